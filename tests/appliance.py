"""Run the real appliance for tests: a `twistd -n mailbox-appliance` process on loopback.

Every listener is configured on port 0 (the kernel picks a free port) and the test reads the real
port from the appliance's own "listening on" log lines, so there is no race for ports.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
ADMIN = os.path.join(BIN, "mailbox-appliance-admin")
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve", "https", "http",
             "metrics")
START_TIMEOUT_SECONDS = 30
LISTENING = re.compile(r"\b(\w+) listening on ([\d.:a-f]+):(\d+) ")


def write_config(directory, extra="", listeners=LISTENERS, domains="example.test"):
    """A configuration file in *directory* with its data there and every listener on port 0."""
    listen = "\n".join(f"{name} = tcp:0:interface=127.0.0.1" for name in listeners)
    disabled = "\n".join(f"{name} =" for name in LISTENERS if name not in listeners)
    path = os.path.join(directory, "appliance.conf")
    with open(path, "w") as handle:
        handle.write(textwrap.dedent(f"""\
            [server]
            hostname = mail.example.test
            data_dir = {os.path.join(directory, "data")}
            domains = {domains}
            [listen]
            """) + listen + "\n" + disabled + "\n" + extra)
    return path


def admin(config_path, *arguments, password=None):
    """Run mailbox-appliance-admin; returns the CompletedProcess (text)."""
    command = [ADMIN, "--config", config_path, *arguments]
    if password is not None:
        command.append("--password-stdin")
    return subprocess.run(command, input=(password + "\n") if password is not None else None,
                          capture_output=True, text=True, timeout=60)


class Appliance:
    """A running appliance process; .ports maps listener name -> port."""

    def __init__(self, config_path=None, cwd=None, expected=LISTENERS, env=None, pidfile=""):
        """*pidfile* None leaves twistd's --pidfile to its default."""
        command = [TWISTD, "-n", *(["--pidfile=" + pidfile] if pidfile is not None else []), "mailbox-appliance"]
        if config_path:
            command += ["--config", config_path]
        self.process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=None if env is None else {**os.environ, **env})
        self.lines = []
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.ports = {}
        self.wait_until(lambda lines: {match.group(1) for match in map(LISTENING.search, lines) if match} >= set(expected),
                        START_TIMEOUT_SECONDS, "every listener")
        for match in filter(None, map(LISTENING.search, self.lines)):
            self.ports[match.group(1)] = int(match.group(3))

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_until(self, predicate, timeout, what):
        """Wait, at most *timeout* seconds, until predicate(log lines) is true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.lines):
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    state = "exited" if self._ended else "did not log it in time"
                    raise AssertionError(f"appliance {state} (waiting for {what}):\n" + "".join(self.lines))
                self._changed.wait(remaining)

    def wait_for_log(self, pattern, timeout=10, count=1):
        """Wait until *count* log lines match *pattern*; returns the count-th one."""
        compiled = re.compile(pattern)

        def matching(lines):
            return [line for line in lines if compiled.search(line)]

        self.wait_until(lambda lines: len(matching(lines)) >= count, timeout, pattern)
        return matching(self.lines)[count - 1]

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("appliance did not stop on SIGTERM:\n" + "".join(self.lines))
