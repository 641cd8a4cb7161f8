"""A real rspamd (Debian's) and the redis its Bayes classifier learns into, both on loopback
ports of their own, for the spam filter's tests.

rspamd runs on a configuration of our own, not /etc/rspamd's: that one fetches maps from
maps.rspamd.com and asks public DNS blocklists, and a test reaches only loopback.  Ours loads
rspamd's rules, no module that needs the network, the test rules in peers/rspamd_rules.lua, and
asks the tests' DNS server on loopback.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
START_SECONDS = 90

CONFIG = """
options {{
  pidfile = "{dir}/rspamd.pid";
  dns {{ nameserver = ["{dns}"]; timeout = 1s; retransmits = 1; }}
  enable_test_patterns = true;
}}
logging {{ type = "file"; filename = "{dir}/rspamd.log"; level = "info"; }}
worker "normal" {{ bind_socket = "127.0.0.1:{normal}"; count = 1; }}
worker "controller" {{ bind_socket = "127.0.0.1:{controller}"; count = 1; secure_ip = "127.0.0.1"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
classifier "bayes" {{
  tokenizer {{ name = "osb"; }}
  backend = "redis"; servers = "127.0.0.1:{redis}"; new_schema = true;
  min_tokens = 11; min_learns = 1;
  statfile {{ symbol = "BAYES_HAM"; spam = false; }}
  statfile {{ symbol = "BAYES_SPAM"; spam = true; }}
}}
lua = "$RULESDIR/rspamd.lua"
lua = "{rules}"
"""


def installed():
    return shutil.which("rspamd") is not None and shutil.which("redis-server") is not None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Rspamd:
    """rspamd with redis, started in *directory*, asking the DNS server at *dns* ("host:port")."""

    def __init__(self, directory, dns):
        self.directory = directory
        ports = {name: free_port() for name in ("normal", "controller", "redis")}
        self.url = f"http://127.0.0.1:{ports['normal']}"
        self.controller = f"http://127.0.0.1:{ports['controller']}"
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        config = os.path.join(directory, "rspamd.conf")
        with open(config, "w") as handle:
            handle.write(CONFIG.format(dir=directory, dns=dns, rules=os.path.join(HERE, "peers", "rspamd_rules.lua"),
                                       **ports))
        # -i: as root (CI) rspamd refuses to run without a user to switch to; the test's
        # directory is root's, so it runs as root.
        command = ["rspamd", "-f", "-c", config, "--var", f"DBDIR={directory}", "--var", f"RUNDIR={directory}"]
        if os.geteuid() == 0:
            command.insert(2, "-i")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_until_ready()

    def _wait_until_ready(self):
        """Until both workers answer /ping (rspamd compiles its rules first: seconds)."""
        deadline = time.monotonic() + START_SECONDS
        for url in (self.url, self.controller):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"rspamd exited: {self.log()[-2000:]}")
                try:
                    with urllib.request.urlopen(url + "/ping", timeout=5) as answer:
                        if answer.read().strip() == b"pong":
                            break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"rspamd did not answer in {START_SECONDS}s: {self.log()[-2000:]}")
                    # Polling a process that gives no other sign of readiness, with a bound.
                    time.sleep(0.2)

    def learned(self):
        """How many messages the controller has learnt, by its /stat."""
        with urllib.request.urlopen(self.controller + "/stat", timeout=10) as answer:
            return json.load(answer)["learned"]

    def log(self):
        try:
            with open(os.path.join(self.directory, "rspamd.log"), errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self):
        os.killpg(self.process.pid, signal.SIGTERM)      # the main process and its workers
        self.redis.terminate()
        for process in (self.process, self.redis):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
