"""A raw SMTP client for tests that must send exactly the octets a hostile client would."""

import base64
import socket
import ssl


def auth_plain(user, password):
    """The AUTH PLAIN command line with its initial response (RFC 4616)."""
    return "AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


class RawSMTP:
    def __init__(self, port, tls_context=None, timeout=30, source="127.0.0.1"):
        """*source*: the loopback address the client connects from."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock)
        self.pending = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def command(self, line):
        """Send one command line (str or bytes, CRLF added) and return its reply."""
        self.send((line.encode("utf-8") if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def reply(self):
        """(code, text of all lines joined by newline) of the next reply; (None, '') on EOF."""
        lines = []
        while True:
            while b"\r\n" not in self.pending:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None, "\n".join(lines)
                self.pending += chunk
            line, self.pending = self.pending.split(b"\r\n", 1)
            lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def open_data(self, sender="a@remote.test", recipient="alice@example.test", mail_parameters=""):
        """EHLO, MAIL, RCPT, DATA: ready for the message octets."""
        for line in ("EHLO client.example.test", f"MAIL FROM:<{sender}>{mail_parameters}", f"RCPT TO:<{recipient}>"):
            code, text = self.command(line)
            assert code == 250, (line, code, text)
        code, text = self.command("DATA")
        assert code == 354, text

    def starttls(self, context):
        code, text = self.command("STARTTLS")
        assert code == 220, text
        self.sock = context.wrap_socket(self.sock)

    def closed(self):
        """True when the server has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()
