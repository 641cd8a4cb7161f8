"""Run the real appliance for tests: a `twistd -n mailbox-appliance` process on loopback.

Every listener is configured on port 0 (the kernel picks a free port) and the test reads the real
port from the appliance's own "listening on" log lines, so there is no race for ports.
"""

import os
import queue
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
LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")
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

    def __init__(self, config_path=None, cwd=None, expected=LISTENERS):
        command = [TWISTD, "-n", "--pidfile=", "mailbox-appliance"]
        if config_path:
            command += ["--config", config_path]
        self.process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ports = {}
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while set(self.ports) != set(expected):
            line = self.next_line(deadline)
            match = LISTENING.search(line)
            if match:
                self.ports[match.group(1)] = int(match.group(3))

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def next_line(self, deadline):
        try:
            line = self._queue.get(timeout=max(0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("appliance said nothing in time:\n" + "".join(self.lines)) from None
        if line is None:
            raise AssertionError("appliance exited:\n" + "".join(self.lines))
        return line

    def wait_for_log(self, pattern, timeout=10):
        """Wait for a log line matching *pattern* (already seen lines count)."""
        compiled = re.compile(pattern)
        for line in list(self.lines):
            if compiled.search(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if compiled.search(line):
                return line

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("appliance did not stop on SIGTERM:\n" + "".join(self.lines))
