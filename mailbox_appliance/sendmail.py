"""mailbox-appliance-sendmail: the sendmail command local programs call (cron, unattended-upgrades,
logcheck, PHP's mail()), installed by the Debian package as /usr/sbin/sendmail and mailq.

It reads the message from stdin and drops it into the maildrop directory (maildrop/entry.py), from
which the appliance delivers it (maildrop/pickup.py): so it works whether the appliance is running
or not, and exits 0 only once the message is on disk.

Options, as sendmail and Postfix take them:

- recipients as arguments (``a@example.com``, a bare ``root``, or ``Name <a@b>``);
- ``-t``: the recipients are also read from To:, Cc: and Bcc:, and Bcc: is removed;
- ``-i`` / ``-oi``: a line holding a single "." is text, not the end of the message;
- ``-f ADDRESS`` / ``-r ADDRESS``: the envelope sender (``<>`` for none); ``-F NAME``: the full
  name for a From: the message lacks;
- ``-C FILE``: the configuration (else $MAILBOX_APPLIANCE_CONFIG, else the built-in defaults);
- ``-bp`` (the package's ``mailq``): print the queue; ``-bi`` (``newaliases``): nothing to do;
- accepted and ignored, as Postfix does: ``-o`` options (``-oem``, ``-odi``...), ``-O``, ``-v``,
  ``-n``, ``-m``, ``-L``, ``-N``, ``-R``, ``-V``, ``-B``, ``-bm``.

Exit status: 0 once queued; the sysexits codes otherwise (64 usage, 65 bad message, 73 cannot
write the maildrop, 78 configuration), with one line on stderr saying why.
"""

import errno
import getopt
import os
import sys

from mailbox_appliance import address_list, config
from mailbox_appliance.maildrop import entry as maildrop_entry
from mailbox_appliance.message import field_values, to_crlf, without_fields

EX_USAGE, EX_DATAERR, EX_CANTCREAT, EX_NOPERM, EX_CONFIG = 64, 65, 73, 77, 78
_OPTIONS = "tiIf:F:r:o:O:b:C:N:R:V:B:L:vnm"


class Failure(Exception):
    """One line for stderr, and the exit status."""

    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


def main(argv=None):
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0])
    try:
        return _run(program, argv[1:])
    except Failure as failure:
        print(f"{program}: {failure}", file=sys.stderr)
        return failure.status


def _run(program, arguments):
    try:
        options, recipients = getopt.getopt(arguments, _OPTIONS)
    except getopt.GetoptError as error:
        raise Failure(EX_USAGE, str(error)) from None
    given = {}
    for option, value in options:
        given.setdefault(option, value)
        if option == "-r":
            given.setdefault("-f", value)
    mode = "i" if "-I" in given else given.get("-b", "m")
    settings = _settings(given.get("-C"))
    if mode == "p":
        return _print_queue(settings)
    if mode == "i":
        print(f"{program}: the aliases file ({settings.accounts.aliases_file}) is read whenever it changes; "
              "edit it with mailbox-appliance-admin alias add/del")
        return 0
    if mode != "m":
        raise Failure(EX_USAGE, f"-b{mode} is not supported (only -bm, -bp and -bi)")
    message = _read_message(sys.stdin.buffer, "-i" in given or ("-o", "i") in options,
                            settings.limits.max_message_size)
    addresses = _addresses(recipients)
    if "-t" in given:
        header_recipients = [value.decode("utf-8", "replace")
                             for name in (b"to", b"cc", b"bcc") for value in field_values(message, name)]
        addresses += _addresses(header_recipients)
        # RFC 5322 §3.6.3: the Bcc: recipients must not see each other.
        message = without_fields(message, (b"bcc",))
    addresses = list(dict.fromkeys(addresses))
    if not addresses:
        raise Failure(EX_USAGE if "-t" not in given else EX_DATAERR, "no recipients given")
    if len(addresses) > settings.limits.max_recipients:
        raise Failure(EX_USAGE, f"{len(addresses)} recipients, more than {settings.limits.max_recipients}")
    try:
        maildrop_entry.write(settings.server.maildrop, _sender(given.get("-f")), given.get("-F") or None,
                             addresses, message)
    except ValueError as error:
        raise Failure(EX_USAGE, str(error)) from None
    except OSError as error:
        hint = "; is this where the appliance runs? pass -C CONFIG" if error.errno == errno.ENOENT else ""
        raise Failure(EX_CANTCREAT,
                      f"cannot queue the message in {settings.server.maildrop}: {error.strerror}{hint}") from None
    return 0


def _sender(given):
    """-f's address: None when not given (the appliance names the user), "" for <>."""
    if given is None:
        return None
    given = given.strip().strip("<>").strip()
    if not given:
        return ""
    addresses = _addresses([given])
    if len(addresses) != 1 or addresses[0] != given:
        raise Failure(EX_USAGE, f"-f {given!r} is not one mail address")
    return addresses[0]


def _print_queue(settings):
    """mailq: the queue as `mailbox-appliance-admin queue list` prints it."""
    from mailbox_appliance import admin

    try:
        return admin.main(["--config", settings.path, "queue", "list"] if settings.path else ["queue", "list"])
    except PermissionError as error:
        raise Failure(EX_NOPERM, f"cannot read the queue ({error.filename}): run this as root") from None


def _settings(path):
    path = path or os.environ.get(config.CONFIG_ENVIRONMENT_VARIABLE) or None
    try:
        return config.load(path)
    except config.ConfigError as error:
        raise Failure(EX_CONFIG, str(error)) from None


def _read_message(stream, dots_are_text, limit):
    """The message from *stream*, CRLF line ends; without -i a line "." ends it (sendmail's rule)."""
    lines, size = [], 0
    for line in stream:
        if not dots_are_text and line.rstrip(b"\r\n") == b".":
            break
        size += len(line)
        if size > limit:
            raise Failure(EX_DATAERR, f"message too big: more than {limit} octets")
        lines.append(line)
    return to_crlf(b"".join(lines))


def _addresses(texts):
    """The addresses in *texts* (each an address or an address list); bare names stay bare (the
    appliance gives them the primary domain)."""
    found = []
    for text in texts:
        for entry in address_list.parse(text):
            if entry.mailbox and entry.host is not None:
                found.append(f"{entry.mailbox}@{entry.host}" if entry.host else entry.mailbox)
    return found


if __name__ == "__main__":
    sys.exit(main())
