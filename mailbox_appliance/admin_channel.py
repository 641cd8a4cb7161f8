"""The admin channel: how mailbox-appliance-admin asks the running appliance to act, and hears back.

A UNIX stream socket, ``DATA/control.sock`` (mode 0600: only the service user, which the admin
command becomes when run by root, may connect).  One request per line, one answer per line, both
JSON objects::

    {"command": "queue retry", "arguments": {"id": "..."}}
    {"ok": true, "text": "retry 0123...: being tried now"}

The appliance side is a Service (started with the listeners) holding a table of commands, each a
function of the arguments returning the answer's text, or a Deferred of it, or raising
CommandError with the text of a refusal; the admin side is ``ask()``, plain blocking sockets.  When
nothing answers, ``ask()`` raises NotRunning, so the admin says so instead of pretending.
"""

import inspect
import json
import os
import socket

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

SOCKET_NAME = "control.sock"
# sockaddr_un.sun_path holds 108 octets with its NUL on Linux.
MAX_SOCKET_PATH_OCTETS = 107
MAX_REQUEST_OCTETS = 65536
# The admin waits this long for an answer (a delete or bounce waits for its spool writes).
ANSWER_TIMEOUT_SECONDS = 120


class CommandError(Exception):
    """A command that cannot be done; the message is the text the admin reads."""


class NotRunning(Exception):
    """No appliance answers on the socket."""


def socket_path(data_dir):
    return os.path.join(data_dir, SOCKET_NAME)


# -- the appliance's side ------------------------------------------------------------------------


class _ChannelProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_OCTETS

    def lineReceived(self, line):
        try:
            request = json.loads(line)
            command = self.factory.commands[request["command"]]
            arguments = request.get("arguments") or {}
            inspect.signature(command).bind(**arguments)
        except (ValueError, KeyError, TypeError, AttributeError):
            self._answer(False, "unknown or malformed request")
            return
        result = defer.maybeDeferred(command, **arguments)
        result.addCallbacks(lambda text: self._answer(True, text), self._failed, errbackArgs=(request["command"],))

    def _failed(self, failure, command):
        if failure.check(CommandError):
            self._answer(False, str(failure.value))
            return
        self.factory.log.failure("admin channel: {command} failed", failure, command=command)
        self._answer(False, f"{command} failed in the appliance; see its log")

    def _answer(self, ok, text):
        if self.transport is not None and self.transport.connected:
            self.sendLine(json.dumps({"ok": ok, "text": text}).encode("utf-8"))

    def lineLengthExceeded(self, line):
        self.transport.loseConnection()


class AdminChannel(service.Service):
    """Serves *commands* ({name: function(**arguments)}) on DATA/control.sock."""

    log = Logger()

    def __init__(self, data_dir, commands, reactor):
        self.setName("admin channel")
        self.path = socket_path(data_dir)
        self.commands = commands
        self.reactor = reactor
        self.port = None

    def startService(self):
        super().startService()
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH_OCTETS:
            self.log.error("admin channel off: {path} is longer than a UNIX socket path may be; "
                           "use a shorter [server] data_dir", path=self.path)
            return
        factory = Factory.forProtocol(_ChannelProtocol)
        factory.commands, factory.log, factory.noisy = self.commands, self.log, False
        # wantPID: a socket left by a killed appliance is replaced, one of a live one is not.
        endpoint = UNIXServerEndpoint(self.reactor, self.path, mode=0o600, wantPID=True)
        endpoint.listen(factory).addCallbacks(self._listening, self._not_listening)

    def _listening(self, port):
        self.port = port
        self.log.info("admin channel: admin commands are taken at {path}", path=self.path)

    def _not_listening(self, failure):
        self.log.error("admin channel off: cannot listen on {path}: {reason}", path=self.path,
                       reason=failure.getErrorMessage())

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


# -- the admin's side ----------------------------------------------------------------------------


def ask(data_dir, command, **arguments):
    """Send one command to the running appliance; returns its answer's text.

    Raises CommandError with the appliance's refusal, NotRunning when nothing answers.
    """
    path = socket_path(data_dir)
    request = json.dumps({"command": command, "arguments": arguments}).encode("utf-8") + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
            channel.settimeout(ANSWER_TIMEOUT_SECONDS)
            channel.connect(path)
            channel.sendall(request)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = channel.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(f"the appliance is not running (nothing answers on {path})") from None
    except socket.timeout:
        raise CommandError(f"the appliance did not answer {command!r} within {ANSWER_TIMEOUT_SECONDS} s") from None
    try:
        reply = json.loads(answer)
        ok, text = bool(reply["ok"]), str(reply["text"])
    except (ValueError, KeyError, TypeError):
        raise CommandError(f"the appliance's answer to {command!r} was cut off; see its log") from None
    if not ok:
        raise CommandError(text)
    return text
