"""The allowed directions of imports between the parts (docs/architecture.md, "Who may import whom").

A part is a top-level module or package of mailbox_appliance.  A new part, or a new arrow between
two parts, fails here until the table below and docs/architecture.md say so: the seams stay
where the design says they are (no part but service.py reaches into the SMTP server, the queue
never knows delivery, the store knows no protocol).
"""

import ast
import pathlib

import mailbox_appliance

PACKAGE = pathlib.Path(mailbox_appliance.__file__).parent
EVERY_PART = {path.stem if path.is_file() else path.name
              for path in PACKAGE.iterdir() if path.suffix == ".py" or (path / "__init__.py").exists()} - {"__init__"}

# part -> the parts it may import (besides itself)
ALLOWED = {
    "message": set(),
    "address_list": set(),
    "interfaces": set(),
    "atomic": set(),
    "admin_channel": set(),
    "login_throttle": set(),
    "connection_limit": {"flow_control"},
    "flow_control": set(),
    "twisted_noise": set(),
    "session_security": {"flow_control"},
    "tls": {"atomic"},
    "accounts": {"atomic", "interfaces"},
    "config": {"accounts"},
    "group_commit": {"atomic"},
    "maildir": {"atomic", "interfaces", "message"},
    "delivery": {"atomic", "interfaces", "maildir", "message"},
    "queue": {"admin_channel", "atomic", "interfaces", "message", "tls"},
    "realm": {"interfaces", "maildir"},
    "quota": {"accounts", "interfaces", "maildir"},
    "spam": {"atomic", "interfaces"},
    "status": {"admin_channel"},
    "smtp": {"accounts", "address_list", "atomic", "interfaces", "message", "queue", "session_security", "spam", "tls"},
    "imap": {"accounts", "address_list", "atomic", "interfaces", "maildir", "message", "session_security"},
    "pop3": {"accounts", "interfaces", "maildir", "message", "session_security"},
    "dovecot_import": {"accounts", "atomic", "maildir"},
    "maildrop": {"address_list", "atomic", "message", "smtp"},
    "sendmail": {"address_list", "admin", "config", "maildrop", "message"},
    "sieve": {"address_list", "atomic", "interfaces", "maildir", "message", "queue"},
    "srs": {"atomic"},
    "web": {"accounts"},
    "metrics": set(),
    "certificates": {"atomic", "tls"},
    "dns_records": {"queue"},
    "dns_check": {"queue"},
    "managesieve": {"accounts", "atomic", "interfaces", "session_security", "sieve"},
    "admin": {"accounts", "admin_channel", "config", "dns_check", "dns_records", "dovecot_import", "maildir", "message",
              "queue", "sieve", "tls"},
    "service": EVERY_PART,
}


def _part_of(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_parts(path, source=None):
    """The parts of mailbox_appliance that the module at *path* (with *source*, by default the
    file's own text) imports."""
    module = ["mailbox_appliance", *path.relative_to(PACKAGE).with_suffix("").parts]
    package = module if path.name == "__init__.py" else module[:-1]
    parts = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level else []) + \
                (node.module.split(".") if node.module else [])
            # "from mailbox_appliance import tls" names the part in the imported names.
            names = [base + [alias.name] for alias in node.names] if len(base) == 1 else [base]
        else:
            continue
        # The package root itself (its __version__) is no part.
        parts.update(name[1] for name in names
                     if name[0] == "mailbox_appliance" and len(name) > 1 and not name[1].startswith("__"))
    return parts


def test_every_part_is_in_the_table():
    assert EVERY_PART - set(ALLOWED) == set(), "a new part: give it a row here and in docs/architecture.md"


def test_every_import_goes_in_an_allowed_direction():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part_of(path)
        for imported in _imported_parts(path) - {part} - ALLOWED.get(part, set()):
            wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert wrong == []


def test_the_check_sees_a_forbidden_import():
    """The rule can fail: a queue module importing the SMTP server, or delivery, is found."""
    module = PACKAGE / "queue" / "runner.py"
    assert "smtp" not in _imported_parts(module)
    source = "from mailbox_appliance.smtp.protocol import SMTPServer\nfrom ..delivery import Delivery\n"
    assert _imported_parts(module, source) == {"smtp", "delivery"}
