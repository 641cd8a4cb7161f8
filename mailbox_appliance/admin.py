"""mailbox-appliance-admin: the admin's command for domains, users, aliases and the configuration.

Every edit goes through accounts.files.edit (locked, atomic), and the running appliance re-reads the
files on its own, so no restart is needed.  Errors are one line on stderr and exit status 1.
"""

import argparse
import getpass
import os
import sys

from mailbox_appliance import __version__, config
from mailbox_appliance.accounts import files, password_policy, passwords
from mailbox_appliance.accounts.addresses import (
    is_valid_address,
    is_valid_domain,
    normalize_address,
    split_address,
)
from mailbox_appliance.accounts.directory import Accounts
from mailbox_appliance.maildir.layout import create_user_maildir, user_maildir
from mailbox_appliance.maildir.usage import storage_used


class AdminError(Exception):
    """What went wrong, in one line for the admin."""


def _settings(arguments):
    path = arguments.config or os.environ.get(config.CONFIG_ENVIRONMENT_VARIABLE) or None
    settings = config.load(path)
    if path is None and arguments.handler is not check_config and not os.path.isdir(settings.server.data_dir):
        # The built-in defaults keep the data in ./mailbox-data of wherever twistd was started:
        # from anywhere else the admin would see no users and make a second, empty tree.
        raise AdminError(f"no configuration file (--config, ${config.CONFIG_ENVIRONMENT_VARIABLE}) and no "
                         f"{settings.server.data_dir} here: run this in the directory the demo runs in "
                         "(where twistd was started), or pass --config")
    return settings


def _accounts(settings):
    return Accounts.from_settings(settings)


def _read_password(arguments, address, check=True):
    """The password from the terminal (twice) or stdin; a new one (*check*) must pass the policy."""
    if arguments.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise AdminError("no terminal to ask the password on; pipe it in with --password-stdin")
        password = getpass.getpass(f"Password for {address}: ")
        if check and getpass.getpass("Again: ") != password:
            raise AdminError("the two passwords differ; nothing changed")
    if not password:
        raise AdminError("an empty password is not allowed; nothing changed")
    problem = password_policy.weakness(password) if check else None
    if problem:
        raise AdminError(f"{problem}; nothing changed")
    return password


def _local_address(accounts, address):
    address = normalize_address(address)
    if not is_valid_address(address):
        raise AdminError(f"{address!r} is not a mail address (expected user@domain)")
    _, domain = split_address(address)
    if not accounts.is_local_domain(domain):
        raise AdminError(f"{domain} is not a domain of this server; add it first: domain add {domain}")
    return address


# -- domains -------------------------------------------------------------------------------------


def domain_add(arguments, settings):
    domain = arguments.domain.strip().lower().rstrip(".")
    if not is_valid_domain(domain):
        raise AdminError(f"{arguments.domain!r} is not a domain name")
    if domain in settings.server.domains:
        return f"{domain} is already served (set in the configuration's [server] domains)"
    files.edit(settings.accounts.domains_file, files.DOMAINS, domain, domain)
    return f"added domain {domain}"


def domain_del(arguments, settings):
    domain = arguments.domain.strip().lower().rstrip(".")
    if domain in settings.server.domains:
        raise AdminError(f"{domain} is set in {settings.path or 'the built-in defaults'} [server] domains; remove it there")
    users = [user for user in _accounts(settings).users() if split_address(user)[1] == domain]
    if users:
        raise AdminError(f"{domain} still has {len(users)} user(s), e.g. {users[0]}; delete them first")
    if files.edit(settings.accounts.domains_file, files.DOMAINS, domain, None) is None:
        raise AdminError(f"{domain} is not a domain added with 'domain add'")
    return f"deleted domain {domain}"


def domain_list(arguments, settings):
    return "\n".join(sorted(_accounts(settings).domains()))


# -- users ---------------------------------------------------------------------------------------


def user_add(arguments, settings):
    accounts = _accounts(settings)
    address = _local_address(accounts, arguments.address)
    if accounts.password_hash(address) is not None:
        raise AdminError(f"{address} exists already; change its password with: user passwd {address}")
    password = _read_password(arguments, address)
    local, domain = split_address(address)
    maildir = user_maildir(settings.server.data_dir, domain, local)
    create_user_maildir(maildir)
    files.edit(settings.accounts.users_file, files.USERS, address, f"{address}:{passwords.hash_password(password)}")
    return "\n".join([f"added user {address} (mail in {maildir})", *_system_aliases(accounts, address, settings)])


# Mail for these names has to reach someone: root's is what cron and local programs send
# (mailbox-appliance-sendmail gives a bare "root" the primary domain), and postmaster must exist
# (RFC 5321 §4.5.1).  The first user added receives both until the admin says otherwise.
SYSTEM_NAMES = ("root", "postmaster")


def _system_aliases(accounts, address, settings):
    """Point root@ and postmaster@ of the primary domain at *address* when they go nowhere yet;
    the lines saying so."""
    domain = accounts.primary_domain
    if not accounts.is_local_domain(domain):
        return []
    said = []
    for name in SYSTEM_NAMES:
        source = f"{name}@{domain}"
        if accounts.resolve(source) is None:
            files.edit(settings.accounts.aliases_file, files.ALIASES, source, f"{source}: {address}")
            said.append(f"mail for {source} goes to {address} (change it with: alias del {source}; alias add ...)")
    return said


def _user_entry(accounts, address):
    entry = accounts.user_entry(address)
    if entry is None:
        raise AdminError(f"no user {address}")
    return entry


def user_passwd(arguments, settings):
    accounts = _accounts(settings)
    address = normalize_address(arguments.address)
    entry = _user_entry(accounts, address)
    password = _read_password(arguments, address)
    # The fields after the hash (Dovecot's uid, home, extra fields: the quota) are kept.
    files.edit(settings.accounts.users_file, files.USERS, address, entry.line(address, passwords.hash_password(password)))
    return f"changed the password of {address}"


def user_quota(arguments, settings):
    """Set the user's storage limit (Dovecot's userdb_quota_rule in the users file), or none."""
    accounts = _accounts(settings)
    address = normalize_address(arguments.address)
    entry = _user_entry(accounts, address)
    if arguments.size.lower() == "none":
        quota = None
    else:
        try:
            quota = config.parse_size(arguments.size)
        except ValueError as error:
            raise AdminError(f"{arguments.size!r}: {error}") from None
    files.edit(settings.accounts.users_file, files.USERS, address, entry.line(address, quota=quota))
    return f"quota of {address}: " + (_size(quota) if quota else "no limit")


def _size(octets):
    for unit, scale in (("G", 1024**3), ("M", 1024**2), ("k", 1024)):
        if octets >= scale:
            return f"{octets / scale:.1f}{unit}"
    return f"{octets}"


def user_del(arguments, settings):
    address = normalize_address(arguments.address)
    if files.edit(settings.accounts.users_file, files.USERS, address, None) is None:
        raise AdminError(f"no user {address}")
    local, domain = split_address(address)
    maildir = user_maildir(settings.server.data_dir, domain, local)
    pointing = sorted(source for source, targets in _accounts(settings).aliases().items() if address in targets)
    if pointing:
        print(f"mailbox-appliance-admin: warning: {', '.join(pointing)} still point(s) to {address}: their mail is "
              "refused (or bounced) until changed with alias del/add", file=sys.stderr)
    return f"deleted user {address}; the mail stays in {maildir} (remove it by hand when no longer needed)"


def user_list(arguments, settings):
    """Each user with the mail stored, the quota and the last login:
    ``alice@example.test  12.3M of 1.0G  last login 2026-12-03 09:12 imap from 192.0.2.7``."""
    import time

    from mailbox_appliance.accounts import last_login

    accounts = _accounts(settings)
    logins = last_login.read(settings.server.data_dir)
    lines = []
    for address in accounts.users():
        entry = accounts.user_entry(address)
        note = "" if passwords.is_supported(entry.password_hash) else (
            f"  (password scheme {passwords.scheme_of(entry.password_hash)} not supported)")
        limit = entry.quota if entry.quota is not None else settings.limits.default_quota
        local, domain = split_address(address)
        used = _size(storage_used(user_maildir(settings.server.data_dir, domain, local)))
        seen = logins.get(address)
        seen = (f"  last login {time.strftime('%Y-%m-%d %H:%M', time.localtime(seen[0]))} {seen[1]} from {seen[2]}"
                if seen else "  never logged in")
        lines.append(f"{address}  {used} of {_size(limit) if limit else 'no limit'}{seen}{note}")
    return "\n".join(lines)


# -- aliases -------------------------------------------------------------------------------------


def alias_add(arguments, settings):
    accounts = _accounts(settings)
    source = normalize_address(arguments.source)
    domain = source[1:] if source.startswith("@") else split_address(source)[1]
    if not (is_valid_domain(domain) and (source.startswith("@") or is_valid_address(source))):
        raise AdminError(f"{arguments.source!r} is not an address or a catch-all @domain")
    if not accounts.is_local_domain(domain):
        raise AdminError(f"{domain} is not a domain of this server; add it first: domain add {domain}")
    targets = list(accounts.aliases().get(source, ()))
    missing = []
    for target in map(normalize_address, arguments.targets):
        if not is_valid_address(target):
            raise AdminError(f"{target!r} is not a mail address")
        if accounts.is_local_domain(split_address(target)[1]) and accounts.resolve(target) is None:
            missing.append(target)
        if target not in targets:
            targets.append(target)
    for target in missing:
        # Mail to the alias would be refused for this target (550) until the user exists.
        problem = f"{target} is no user or alias here"
        if arguments.strict:
            raise AdminError(f"{problem}; nothing changed (without --strict it is added with a warning)")
        print(f"mailbox-appliance-admin: warning: {problem}: mail for {source} to it is refused until it "
              "is added", file=sys.stderr)
    files.edit(settings.accounts.aliases_file, files.ALIASES, source, f"{source}: {', '.join(targets)}")
    return f"{source} -> {', '.join(targets)}"


def alias_del(arguments, settings):
    source = normalize_address(arguments.source)
    previous = _accounts(settings).aliases().get(source)
    if previous is None:
        raise AdminError(f"no alias {source}")
    removed = set(map(normalize_address, arguments.targets))
    remaining = [target for target in previous if target not in removed] if removed else []
    new_line = f"{source}: {', '.join(remaining)}" if remaining else None
    files.edit(settings.accounts.aliases_file, files.ALIASES, source, new_line)
    return f"{source} -> {', '.join(remaining)}" if remaining else f"deleted alias {source}"


def alias_list(arguments, settings):
    return "\n".join(f"{source}: {', '.join(targets)}" for source, targets in sorted(_accounts(settings).aliases().items()))


# -- queue ---------------------------------------------------------------------------------------


def _spool(settings):
    from mailbox_appliance.queue.spool import Spool

    return Spool(settings.data_path("queue"))


def queue_list(arguments, settings):
    import json
    import time

    envelopes = _spool(settings).load(repair=False)
    if arguments.json:
        # The envelopes as the spool keeps them (queue/envelope.py), one JSON array: for scripts.
        return json.dumps([envelope.to_dict() for envelope in envelopes], indent=1, sort_keys=True)
    lines = []
    for envelope in envelopes:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(envelope.next_attempt))
        lines.append(f"{envelope.id}  from <{envelope.sender}>  attempts {envelope.attempts}  next {when}")
        for recipient in envelope.recipients:
            reply = f": {recipient.last_reply}" if recipient.last_reply else ""
            lines.append(f"    <{recipient.address}> {recipient.state}{reply}")
    return "\n".join(lines) or "the queue is empty"


def queue_show(arguments, settings):
    """One entry as `postcat -q` shows it: the envelope, then the message's header."""
    import json

    from mailbox_appliance.message import header_block
    from mailbox_appliance.queue.spool import CorruptEntry, UnknownEntry

    spool = _spool(settings)
    try:
        envelope = spool.read_envelope(arguments.id)
        message = spool.read_message(arguments.id)
    except (UnknownEntry, CorruptEntry, ValueError):
        raise AdminError(f"no queued message {arguments.id}") from None
    header = header_block(message).decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", "\n")
    return (f"*** ENVELOPE {envelope.id} ***\n{json.dumps(envelope.to_dict(), indent=1, sort_keys=True)}\n"
            f"*** MESSAGE HEADER ({len(message)} octets in all) ***\n{header}")


def _ask(settings, command, **arguments):
    """Have the running appliance do *command* (admin_channel.py); its answer, or why not."""
    from mailbox_appliance import admin_channel

    try:
        return admin_channel.ask(settings.server.data_dir, command, **arguments)
    except admin_channel.NotRunning as error:
        raise AdminError(f"{error}; nothing was done. Start it first "
                         "(systemctl start mailbox-appliance, or twistd mailbox-appliance)") from None
    except admin_channel.CommandError as error:
        raise AdminError(str(error)) from None


def status(arguments, settings):
    return _ask(settings, "status")


def who(arguments, settings):
    return _ask(settings, "who")


def kick(arguments, settings):
    return _ask(settings, "kick", address=normalize_address(arguments.address))


def auth_test(arguments, settings):
    address = normalize_address(arguments.address)
    return _ask(settings, "auth test", address=address, password=_read_password(arguments, address, check=False))


def queue_flush(arguments, settings):
    return _ask(settings, "queue flush")


def queue_retry(arguments, settings):
    return _ask(settings, "queue retry", queue_id=arguments.id)


def queue_delete(arguments, settings):
    return _ask(settings, "queue delete", queue_id=arguments.id)


def queue_bounce(arguments, settings):
    return _ask(settings, "queue bounce", queue_id=arguments.id)


# -- Sieve ---------------------------------------------------------------------------------------


def _sieve_scripts(arguments, settings):
    """The user's address (who must exist) and the ISieveScripts over the data directory."""
    from mailbox_appliance.sieve.scripts import SieveScripts

    address = normalize_address(arguments.address)
    _user_entry(_accounts(settings), address)
    return address, SieveScripts(settings.server.data_dir)


def _sieve_errors(operation):
    """Run *operation*; a refused script or operation is one line for the admin."""
    from mailbox_appliance.sieve.grammar import SieveError
    from mailbox_appliance.sieve.scripts import ScriptError

    try:
        return operation()
    except (SieveError, ScriptError) as error:
        raise AdminError(str(error)) from None


def sieve_list(arguments, settings):
    address, scripts = _sieve_scripts(arguments, settings)
    listed = scripts.list(address)
    if not listed:
        return f"{address} has no Sieve scripts"
    return "\n".join(name + ("  (active)" if active else "") for name, active in listed)


def sieve_show(arguments, settings):
    address, scripts = _sieve_scripts(arguments, settings)
    return _sieve_errors(lambda: scripts.get(address, arguments.name)).decode("utf-8", "replace").rstrip("\n")


def sieve_put(arguments, settings):
    address, scripts = _sieve_scripts(arguments, settings)
    if arguments.file in (None, "-"):
        script = sys.stdin.buffer.read()
    else:
        with open(arguments.file, "rb") as handle:
            script = handle.read()
    _sieve_errors(lambda: scripts.put(address, arguments.name, script))
    if arguments.activate:
        _sieve_errors(lambda: scripts.activate(address, arguments.name))
        return f"script {arguments.name} of {address} stored and active"
    return f"script {arguments.name} of {address} stored; make it the one that runs with: sieve activate {address} {arguments.name}"


def sieve_activate(arguments, settings):
    address, scripts = _sieve_scripts(arguments, settings)
    _sieve_errors(lambda: scripts.activate(address, arguments.name))
    return f"script {arguments.name} of {address} is active" if arguments.name else f"no script of {address} is active"


def sieve_delete(arguments, settings):
    address, scripts = _sieve_scripts(arguments, settings)
    _sieve_errors(lambda: scripts.delete(address, arguments.name))
    return f"script {arguments.name} of {address} deleted"


VACATION_SCRIPT = "vacation"
_PREVIOUS = "# previously active: "


def vacation(arguments, settings):
    return (vacation_on if arguments.state == "on" else vacation_off)(arguments, settings)


def vacation_on(arguments, settings):
    """The admin's shortcut for an out-of-office reply: a script "vacation", made active.  A
    user's other active script is only replaced with --replace, and comes back with `off`."""
    address, scripts = _sieve_scripts(arguments, settings)
    active = scripts.active_name(address)
    if active not in (None, VACATION_SCRIPT) and not arguments.replace:
        raise AdminError(f"{address} has the active script {active!r}: add a vacation command to it "
                         f"(sieve show / sieve put), or give --replace to run only the vacation until `vacation "
                         f"{address} off` brings {active!r} back")
    reason = sys.stdin.read().strip()
    if not reason:
        raise AdminError("no reply text: give the message on standard input")
    tags = f":days {arguments.days}"
    if arguments.subject:
        tags += f" :subject {_sieve_string(arguments.subject)}"
    if arguments.sender:
        tags += f" :from {_sieve_string(arguments.sender)}"
    previous = f"{_PREVIOUS}{active}\n" if active not in (None, VACATION_SCRIPT) else ""
    script = f'{previous}require "vacation";\nvacation {tags} {_sieve_string(reason)};\n'
    _sieve_errors(lambda: scripts.put(address, VACATION_SCRIPT, script.encode("utf-8")))
    _sieve_errors(lambda: scripts.activate(address, VACATION_SCRIPT))
    return f"vacation reply on for {address} (each sender answered at most once in {arguments.days} days)"


def vacation_off(arguments, settings):
    address, scripts = _sieve_scripts(arguments, settings)
    if scripts.active_name(address) != VACATION_SCRIPT:
        raise AdminError(f"{address} has no vacation reply on")
    first = scripts.get(address, VACATION_SCRIPT).decode("utf-8", "replace").split("\n", 1)[0]
    previous = first[len(_PREVIOUS):] if first.startswith(_PREVIOUS) else None
    _sieve_errors(lambda: scripts.activate(address, previous))
    _sieve_errors(lambda: scripts.delete(address, VACATION_SCRIPT))
    return f"vacation reply off for {address}" + (f"; script {previous} is active again" if previous else "")


def _sieve_string(text):
    """*text* as a Sieve string: quoted, or a multi-line text: (RFC 5228 §2.4.2)."""
    if "\n" in text or "\r" in text:
        lines = text.replace("\r\n", "\n").split("\n")
        return "text:\n" + "".join(("." + line if line.startswith(".") else line) + "\n" for line in lines) + ".\n"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- DKIM ----------------------------------------------------------------------------------------


def _dkim_names(arguments):
    """The domain and selector given, checked (a selector is a file name: no path tricks)."""
    domain = arguments.domain.strip().lower().rstrip(".")
    selector = arguments.selector.strip().lower()
    if not is_valid_domain(selector):
        raise AdminError(f"{arguments.selector!r} is not a DKIM selector (letters, digits, '-' and '.')")
    return domain, selector


def _signing(settings, domain, selector):
    """The line saying whether *selector* signs *domain*'s mail."""
    import os

    from mailbox_appliance.queue import dkim_keys

    signing = dkim_keys.signing_selector(os.path.join(dkim_keys.key_directory(settings.server.data_dir), domain))
    if signing == selector:
        return f"; selector {selector} signs the mail of {domain}"
    return (f"; selector {signing} signs the mail of {domain}, not {selector}: once its record is published "
            f"and visible, switch with: dkim use {domain} {selector}")


def dkim_keygen(arguments, settings):
    from mailbox_appliance.queue import dkim_keys

    domain, selector = _dkim_names(arguments)
    if not _accounts(settings).is_local_domain(domain):
        raise AdminError(f"{domain} is not a domain of this server; add it first: domain add {domain}")
    try:
        record = dkim_keys.generate_key(settings.server.data_dir, domain, selector)
    except FileExistsError as error:
        raise AdminError(str(error)) from None
    return _dns_records(settings, domain, selector, record) + "\n" + _signing(settings, domain, selector)


def dkim_show(arguments, settings):
    from mailbox_appliance.queue import dkim_keys

    domain, selector = _dkim_names(arguments)
    try:
        record = dkim_keys.public_record(settings.server.data_dir, domain, selector)
    except FileNotFoundError:
        raise AdminError(f"no DKIM key for {domain} (selector {selector}); make one with: dkim keygen {domain}") from None
    return _dns_records(settings, domain, selector, record) + "\n" + _signing(settings, domain, selector)


def dkim_use(arguments, settings):
    """Key rotation: sign with another of the domain's keys from now on."""
    import os

    from mailbox_appliance.queue import dkim_keys

    domain, selector = _dkim_names(arguments)
    key = os.path.join(dkim_keys.key_directory(settings.server.data_dir), domain, f"{selector}.key")
    if not os.path.exists(key):
        raise AdminError(f"no DKIM key for {domain} with selector {selector}; make one with: "
                         f"dkim keygen {domain} --selector {selector}")
    dkim_keys.use(settings.server.data_dir, domain, selector)
    return f"selector {selector} signs the mail of {domain} from now on (the running appliance needs no restart)"


def _dns_records(settings, domain, selector, record):
    from mailbox_appliance import dns_records

    lines = dns_records.zone_lines(dns_records.mail_authentication(domain, (selector, record)))
    return "\n".join([f"Publish these DNS records for {domain} (dns {domain} lists every record):", *lines])


def dns_command(arguments, settings):
    """Every record a domain needs; with --check, what the DNS holds of each."""
    from mailbox_appliance import dns_check, dns_records

    domain = arguments.domain.strip().lower().rstrip(".")
    if not _accounts(settings).is_local_domain(domain):
        raise AdminError(f"{domain} is not a domain of this server; add it first: domain add {domain}")
    records = dns_records.required(settings, domain)
    if not arguments.check:
        return "\n".join([f"Publish these DNS records for {domain}:", *dns_records.zone_lines(records)])
    lines, good = [], 0
    for record, found in dns_check.look_up(settings.outbound.resolver, records):
        status = "UNKNOWN" if found is None else dns_records.verdict(record, found)
        good += status == "OK"
        shown = ", ".join(f"port {value[1]} on {value[0]}" if isinstance(value, tuple) else value for value in found or ())
        advice = {"MISSING": f": publish {record.value}", "WRONG": f": found {shown}; publish {record.value}",
                  "UNKNOWN": ": the lookup failed (try again)"}.get(status, "")
        lines.append(f"{status:<8} {record.name} {record.type}{advice}")
    return "\n".join([*lines, f"{good} of {len(records)} records of {domain} are as they should be"])


# -- configuration -------------------------------------------------------------------------------


def check_config(arguments, settings):
    from mailbox_appliance import tls

    accounts = _accounts(settings)
    pair = settings.tls
    if pair.create_self_signed and not (os.path.exists(pair.certificate) or os.path.exists(pair.private_key)):
        # A check changes nothing on disk: the appliance makes this pair when it first starts.
        certificate = f"a self-signed certificate will be made at the first start: {pair.certificate}"
    else:
        tls.context_factory(settings, create=False)
        certificate = f"certificate {pair.certificate}: OK"
    return "\n".join([
        f"configuration {settings.path or '(built-in defaults)'}: OK",
        f"hostname {settings.server.hostname}; data in {settings.server.data_dir}",
        certificate,
        f"domains: {', '.join(sorted(accounts.domains()))}",
        f"{len(accounts.users())} user(s), {len(accounts.aliases())} alias(es)",
        *(f"listener {name}: {endpoint}{' (TLS)' if implicit else ''}" for name, endpoint, implicit in settings.listen.enabled()),
    ])


# -- Dovecot takeover ----------------------------------------------------------------------------


def import_dovecot(arguments, settings):
    from mailbox_appliance import dovecot_import

    try:
        outcome = dovecot_import.take_over(settings, arguments.mail_root, arguments.passwd_file, arguments.dry_run)
    except dovecot_import.TakeoverError as error:
        raise AdminError(str(error)) from None
    if not outcome.complete:
        print(outcome.report)
        raise AdminError("the users marked REFUSED were not imported (nothing changed for them); see above")
    return outcome.report


def _parser():
    parser = argparse.ArgumentParser(prog="mailbox-appliance-admin", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mailbox-appliance {__version__}")
    parser.add_argument("--config", "-c", help=f"the INI configuration file (default: ${config.CONFIG_ENVIRONMENT_VARIABLE}, else the built-in defaults)")
    groups = parser.add_subparsers(dest="group", required=True, metavar="{domain,user,alias,queue,dkim,dns,sieve,vacation,import-dovecot,check-config,status,who,kick,auth}")

    def command(subparsers, name, handler, help_text):
        sub = subparsers.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        return sub

    domain = groups.add_parser("domain", help="domains served here").add_subparsers(dest="action", required=True)
    command(domain, "add", domain_add, "serve a domain").add_argument("domain")
    command(domain, "del", domain_del, "stop serving a domain (it must have no users)").add_argument("domain")
    command(domain, "list", domain_list, "list the domains")

    user = groups.add_parser("user", help="users (mailboxes)").add_subparsers(dest="action", required=True)
    for name, handler, help_text in (("add", user_add, "add a user and create its Maildir"),
                                     ("passwd", user_passwd, "change a user's password")):
        sub = command(user, name, handler, help_text)
        sub.add_argument("address")
        sub.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    command(user, "del", user_del, "delete a user (its mail is kept on disk)").add_argument("address")
    command(user, "list", user_list, "list the users, their mail stored and their quota")
    sub = command(user, "quota", user_quota, "set a user's storage limit (e.g. 2G), or none for no limit")
    sub.add_argument("address")
    sub.add_argument("size")

    alias = groups.add_parser("alias", help="aliases and catch-alls").add_subparsers(dest="action", required=True)
    sub = command(alias, "add", alias_add, "point an address (or @domain) at one or more addresses")
    sub.add_argument("source", help="the address mail arrives for, or @domain for every address of a domain")
    sub.add_argument("targets", nargs="+", help="where it goes: users here, other aliases, or remote addresses")
    sub.add_argument("--strict", action="store_true", help="refuse a target in our domains that is no user or alias")
    sub = command(alias, "del", alias_del, "delete an alias, or only some of its targets")
    sub.add_argument("source")
    sub.add_argument("targets", nargs="*")
    command(alias, "list", alias_list, "list the aliases")

    queue = groups.add_parser("queue", help="the outbound queue").add_subparsers(dest="action", required=True)
    command(queue, "list", queue_list, "list queued messages and each recipient's state").add_argument(
        "--json", action="store_true", help="as a JSON array of the spool's envelopes")
    command(queue, "show", queue_show, "one queued message: its envelope and header").add_argument(
        "id", help="the queue id (from queue list, or the log)")
    command(queue, "flush", queue_flush, "try every queued message now")
    for name, handler, help_text in (("retry", queue_retry, "try one message now"),
                                     ("delete", queue_delete, "drop a message without telling its sender"),
                                     ("bounce", queue_bounce, "give up on a message and bounce it to its sender")):
        command(queue, name, handler, help_text).add_argument("id")

    command(groups, "status", status, "the running appliance: version, uptime, listeners, sessions, queue")
    command(groups, "who", who, "who is logged in (IMAP, POP3, SMTP AUTH): user, protocol, client, since")
    command(groups, "kick", kick, "end every session of a user").add_argument("address", help="the user's address")
    sub = command(groups, "auth", auth_test, "check a password as the running appliance would (auth test ADDRESS)")
    sub.add_argument("test", choices=["test"], help="the only auth command")
    sub.add_argument("address", help="the user's address")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not the terminal")
    sieve = groups.add_parser("sieve", help="users' Sieve filter scripts").add_subparsers(dest="action", required=True)
    command(sieve, "list", sieve_list, "list a user's scripts, and which is active").add_argument("address")
    for name, handler, help_text in (("show", sieve_show, "print a script"),
                                     ("delete", sieve_delete, "delete a script (not the active one)")):
        sub = command(sieve, name, handler, help_text)
        sub.add_argument("address")
        sub.add_argument("name")
    sub = command(sieve, "put", sieve_put, "store a script (checked first) from FILE or standard input")
    sub.add_argument("address")
    sub.add_argument("name")
    sub.add_argument("file", nargs="?", help="the script's file; - or nothing: standard input")
    sub.add_argument("--activate", action="store_true", help="and make it the script that runs")
    sub = command(sieve, "activate", sieve_activate, "make a script the one that runs; no name: none runs")
    sub.add_argument("address")
    sub.add_argument("name", nargs="?")
    sub = command(groups, "vacation", vacation, "a user's out-of-office reply: vacation ADDRESS on|off "
                  "(on: the reply's text on standard input)")
    sub.add_argument("address")
    sub.add_argument("state", choices=["on", "off"])
    sub.add_argument("--subject", help="the reply's subject (default: Auto: and the original subject)")
    sub.add_argument("--days", type=int, default=7, help="answer each sender at most once in this many days (7)")
    sub.add_argument("--from", dest="sender", help="the reply's From: (default: the user's address)")
    sub.add_argument("--replace", action="store_true", help="run it instead of the user's active script until off")
    dkim = groups.add_parser("dkim", help="DKIM signing keys").add_subparsers(dest="action", required=True)
    for name, handler, help_text in (("keygen", dkim_keygen, "make a signing key and print the DNS records"),
                                     ("show", dkim_show, "print the DNS records of an existing key")):
        sub = command(dkim, name, handler, help_text)
        sub.add_argument("domain", help="one of this server's domains")
        sub.add_argument("--selector", default="mail", help="the DKIM selector (default: mail)")
    sub = command(dkim, "use", dkim_use, "sign the domain's mail with another of its keys (key rotation)")
    sub.add_argument("domain", help="one of this server's domains")
    sub.add_argument("selector", help="the selector of a key made with dkim keygen")

    sub = command(groups, "dns", dns_command, "every DNS record a domain needs (--check: look them up)")
    sub.add_argument("domain", help="one of this server's domains")
    sub.add_argument("--check", action="store_true", help="ask the DNS ([outbound] resolver) for each record")
    sub = command(groups, "import-dovecot", import_dovecot, "take over a Dovecot Maildir tree and passwd-file")
    sub.add_argument("--mail-root", required=True, help="Dovecot's Maildirs, as DIR/DOMAIN/USER (maildir:DIR/%%d/%%n)")
    sub.add_argument("--passwd-file", required=True, help="Dovecot's passwd-file (user@domain:{SCHEME}hash:...)")
    sub.add_argument("--dry-run", action="store_true", help="only report what would be done")

    command(groups, "check-config", check_config, "check the configuration, certificate and account files")
    return parser


def main(argv=None):
    from mailbox_appliance import tls

    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()
        return 2
    arguments = parser.parse_args(argv)
    try:
        output = arguments.handler(arguments, _settings(arguments))
    except (AdminError, config.ConfigError, files.FileFormatError, tls.TLSError, ValueError) as error:
        print(f"mailbox-appliance-admin: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
