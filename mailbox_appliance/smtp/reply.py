"""An SMTP reply as an exception, so that any check can end a command with the right answer."""


class Reply(Exception):
    """A reply to send: code, enhanced status code (RFC 3463), text."""

    def __init__(self, code, status, text):
        super().__init__(f"{code} {status} {text}")
        self.code, self.status, self.text = code, status, text
