"""Postfix handing each message to Dovecot's LMTP: what an office would run instead of the
appliance, for benchmarks/smtp_accept.py --against-postfix.

Debian's Postfix (package postfix) runs as an instance of its own, ``postfix -c CONFIG start``,
with its configuration, queue and log in a temporary directory: smtpd on 127.0.0.1 and a free
port, EXAMPLE's domain a virtual mailbox domain whose mail goes by LMTP to Debian's Dovecot
(dovecot-lmtpd; tests/dovecot_server.py), which stores it in the user's Maildir new/ (with
Dovecot's default fsyncs, as the appliance makes each message durable before its 250).  Both
keep their defaults otherwise; nothing checks the sender (SPF, DKIM) on this side.

Root is needed (Postfix's daemons drop to its own user), as for the Dovecot comparison.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from dovecot_server import DOVECOT, SBIN_PATH, Dovecot, free_port  # noqa: E402

POSTFIX = shutil.which("postfix", path=SBIN_PATH)
START_TIMEOUT = 60

# Postfix's services, none chrooted (a chroot needs copies of /etc files in the queue directory).
MASTER_CF = """\
{address} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixDovecot:
    """Postfix on 127.0.0.1:.port delivering *domain*'s mail for *user* through Dovecot's LMTP
    into .new_dir; everything lives under *base* (a new directory)."""

    def __init__(self, base, domain, user):
        if POSTFIX is None or DOVECOT is None or not os.path.exists("/usr/lib/dovecot/lmtp"):
            raise SystemExit("--against-postfix needs: apt-get install postfix dovecot-lmtpd")
        if os.geteuid() != 0:
            raise SystemExit("--against-postfix needs root (Postfix's daemons drop to their own user)")
        os.makedirs(base)
        os.chmod(os.path.dirname(base), 0o755)       # Dovecot's mail processes run as nobody
        os.chmod(base, 0o755)
        mail_root = os.path.join(base, "vmail")
        passwd = os.path.join(base, "users")
        with open(passwd, "w") as handle:
            handle.write(f"{user}@{domain}:{{PLAIN}}unused::::::\n")
        self.dovecot = Dovecot(base, mail_root, passwd, lmtp=True)
        self.new_dir = os.path.join(mail_root, domain, user, "new")          # Dovecot's %d/%n
        self.port = free_port()
        self.config = os.path.join(base, "postfix")
        os.makedirs(self.config)
        with open(os.path.join(self.config, "master.cf"), "w") as handle:
            handle.write(MASTER_CF.format(address=f"127.0.0.1:{self.port}"))
        with open(os.path.join(self.config, "main.cf"), "w") as handle:
            handle.write(textwrap.dedent(f"""\
                compatibility_level = 3.6
                queue_directory = {base}/spool
                data_directory = {base}/data
                maillog_file = {base}/postfix.log
                maillog_file_prefixes = {base}
                myhostname = mx.{domain}
                mydestination =
                inet_interfaces = 127.0.0.1
                inet_protocols = ipv4
                mynetworks = 127.0.0.0/8
                smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
                virtual_mailbox_domains = {domain}
                virtual_transport = lmtp:inet:127.0.0.1:{self.dovecot.lmtp_port}
                alias_maps =
                alias_database =
                biff = no
                smtputf8_enable = no
                message_size_limit = 52428800
                """))
        os.makedirs(os.path.join(base, "spool"))        # Postfix makes its queues inside
        os.makedirs(os.path.join(base, "data"))
        os.chown(os.path.join(base, "data"), pwd.getpwnam("postfix").pw_uid, -1)
        subprocess.run([POSTFIX, "-c", self.config, "start"], check=True, capture_output=True, text=True)
        self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("Postfix did not start listening")

    def stop(self):
        subprocess.run([POSTFIX, "-c", self.config, "stop"], capture_output=True)
        self.dovecot.stop()
