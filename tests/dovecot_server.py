"""A real Dovecot (Debian's dovecot-imapd) on loopback, for the takeover test and the IMAP load
benchmark: `dovecot -F -c CONFIG` with its own base_dir, 127.0.0.1 on a free port, passwd-file
passdb, static userdb, Maildir++ under MAIL_ROOT/<domain>/<user>."""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import textwrap
import threading

from appliance import Appliance

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
DOVECOT = shutil.which("dovecot", path=SBIN_PATH)
DOVEADM = shutil.which("doveadm", path=SBIN_PATH)
START_TIMEOUT_SECONDS = 30


def mail_user():
    """(uid, gid, name) Dovecot's mail processes run as: never root, which Dovecot refuses."""
    entry = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def chown_tree(top, uid, gid):
    for directory, subdirectories, file_names in os.walk(top):
        for name in [directory, *(os.path.join(directory, n) for n in subdirectories + file_names)]:
            os.lchown(name, uid, gid)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dovecot(Appliance):
    """A `dovecot -F` process serving *mail_root* (maildir:MAIL_ROOT/%d/%n) on 127.0.0.1:.port;
    its log (on stderr) is read, waited on and reported like the appliance's.

    *tls* (certificate path, key path) adds an imaps listener on .tls_port; *lmtp* an LMTP one
    (Debian's dovecot-lmtpd) on .lmtp_port; *settings* are more lines of dovecot.conf."""

    def __init__(self, place, mail_root, passwd_file, tls=None, settings="", lmtp=False):
        uid, gid, name = mail_user()
        run = tempfile.mkdtemp(prefix="dovecot-", dir=place)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.lmtp_port = free_port() if lmtp else 0
        lmtp_service = textwrap.dedent(f"""\
            service lmtp {{
              inet_listener lmtp {{
                address = 127.0.0.1
                port = {self.lmtp_port}
              }}
            }}
            """) if lmtp else ""
        ssl = f"ssl = yes\nssl_cert = <{tls[0]}\nssl_key = <{tls[1]}\n" if tls else "ssl = no\n"
        # Not root: every Dovecot process runs as us (no chroot then, which needs root).
        unprivileged = "" if os.geteuid() == 0 else (
            f"default_login_user = {name}\ndefault_internal_user = {name}\n"
            f"default_internal_group = {grp.getgrgid(gid).gr_name}\n")
        config = os.path.join(run, "dovecot.conf")
        with open(config, "w") as handle:
            handle.write(textwrap.dedent(f"""\
                base_dir = {run}/base
                state_dir = {run}/state
                log_path = /dev/stderr
                protocols = imap{" lmtp" if lmtp else ""}
                listen = 127.0.0.1
                disable_plaintext_auth = no
                auth_mechanisms = plain
                first_valid_uid = {uid}
                mail_location = maildir:{mail_root}/%d/%n
                passdb {{
                  driver = passwd-file
                  args = {passwd_file}
                }}
                userdb {{
                  driver = static
                  args = uid={uid} gid={gid} home={mail_root}/%d/%n
                }}
                service anvil {{
                  chroot =
                }}
                service imap-login {{
                  chroot =
                  inet_listener imap {{
                    address = 127.0.0.1
                    port = {self.port}
                  }}
                  inet_listener imaps {{
                    address = 127.0.0.1
                    port = {self.tls_port}
                  }}
                }}
                """) + lmtp_service + ssl + unprivileged + settings)
        os.makedirs(mail_root, exist_ok=True)
        chown_tree(mail_root, uid, gid)
        # The same start-up as Appliance.__init__, on another command: the master logs "starting
        # up" only after binding its listeners.
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", config], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for_log(r"master: Info: Dovecot v\S+ .*starting up", START_TIMEOUT_SECONDS)
