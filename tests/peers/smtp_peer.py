"""A real SMTP server for tests of outbound delivery: the remote MX, with configurable bad habits.

    python smtp_peer.py SPOOL_DIR CERT KEY HOST=BEHAVIOUR [HOST=BEHAVIOUR ...]

Listens on one port (printed as "smtp listening on PORT") on each loopback HOST, behaving as:
  accept     accept everything; STARTTLS offered
  plain      accept everything; an old server: no STARTTLS, no PIPELINING
  greet421   answer the greeting with 421 and close
  drop-data  close the connection in the middle of DATA
  slow       wait 2 seconds before every reply
  auth       a smart host: STARTTLS, then AUTH PLAIN as relayuser / relaypass, required before MAIL
Recipients whose local part starts with "perm" get 550 5.1.1, "temp" get 451 4.2.1.
Each accepted message is written to SPOOL_DIR as N.json (envelope, host, tls, connection number)
and N.eml (the
octets exactly as they came over the wire before un-stuffing: DATA "as sent").
"""

import asyncio
import base64
import itertools
import json
import os
import ssl
import sys

COUNTER = itertools.count(1)
CONNECTIONS = itertools.count(1)


class Session:
    def __init__(self, reader, writer, behaviour, spool, tls_context, host):
        self.reader, self.writer = reader, writer
        self.behaviour, self.spool, self.tls_context, self.host = behaviour, spool, tls_context, host
        self.tls = False
        self.user = None
        self.connection = next(CONNECTIONS)

    async def reply(self, text):
        if self.behaviour == "slow":
            await asyncio.sleep(2)
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()

    async def run(self):
        if self.behaviour == "greet421":
            await self.reply("421 4.3.2 not now")
            self.writer.close()
            return
        await self.reply(f"220 {self.host} test peer")
        sender, recipients = None, []
        while True:
            line = await self.reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                extensions = ["8BITMIME", "SMTPUTF8", "SIZE 100000000"]
                if self.behaviour != "plain":
                    extensions.insert(0, "PIPELINING")
                if self.behaviour != "plain" and not self.tls:
                    extensions.append("STARTTLS")
                if self.behaviour == "auth" and self.tls:
                    extensions.append("AUTH PLAIN")
                await self.reply("\r\n".join([f"250-{self.host}"] + [f"250-{e}" for e in extensions[:-1]]
                                             + [f"250 {extensions[-1]}"]))
            elif verb == b"HELO":
                await self.reply(f"250 {self.host}")
            elif verb == b"STAR":
                await self.reply("220 2.0.0 go ahead")
                await self.writer.start_tls(self.tls_context)
                self.tls = True
            elif verb == b"AUTH":
                _, user, password = base64.b64decode(line.split()[2]).split(b"\0")
                if (user, password) == (b"relayuser", b"relaypass") and self.tls:
                    self.user = user.decode()
                    await self.reply("235 2.7.0 ok")
                else:
                    await self.reply("535 5.7.8 no")
            elif verb == b"MAIL" and self.behaviour == "auth" and self.user is None:
                await self.reply("530 5.7.0 authentication required")
            elif verb == b"MAIL":
                sender = line.decode("utf-8").split(":", 1)[1].strip().split()[0]
                recipients = []
                await self.reply("250 2.1.0 ok")
            elif verb == b"RCPT":
                address = line.decode("utf-8").split(":", 1)[1].strip().split()[0].strip("<>")
                if address.startswith("perm"):
                    await self.reply(f"550 5.1.1 <{address}>: user unknown")
                elif address.startswith("temp"):
                    await self.reply(f"451 4.2.1 <{address}>: mailbox busy, try later")
                else:
                    recipients.append(address)
                    await self.reply("250 2.1.5 ok")
            elif verb == b"DATA" and not recipients:
                await self.reply("554 5.5.1 no valid recipients")
            elif verb == b"DATA":
                await self.reply("354 go ahead")
                data = b""
                while not data.endswith(b"\r\n.\r\n") and data != b".\r\n":
                    data += await self.reader.readline()
                if self.behaviour == "drop-data":
                    self.writer.transport.abort()
                    return
                number = next(COUNTER)
                with open(os.path.join(self.spool, f"{number}.eml"), "wb") as handle:
                    handle.write(data)
                with open(os.path.join(self.spool, f"{number}.json"), "w") as handle:
                    json.dump({"sender": sender, "recipients": recipients, "host": self.host, "tls": self.tls,
                               "user": self.user, "connection": self.connection}, handle)
                await self.reply(f"250 2.0.0 accepted as {number}")
            elif verb == b"RSET" or verb == b"NOOP":
                await self.reply("250 2.0.0 ok")
            elif verb == b"QUIT":
                await self.reply("221 2.0.0 bye")
                self.writer.close()
                return
            else:
                await self.reply("500 5.5.1 what?")


async def main():
    spool, certificate, key, *hosts = sys.argv[1:]
    tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_context.load_cert_chain(certificate, key)
    behaviours = dict(item.split("=", 1) for item in hosts)
    for _ in range(50):
        # The first host's port is the kernel's pick; should it be taken on another host, start
        # again with a new one.
        port, servers = 0, []
        try:
            for host, behaviour in behaviours.items():
                async def handle(reader, writer, behaviour=behaviour, host=host):
                    await Session(reader, writer, behaviour, spool, tls_context, host).run()

                server = await asyncio.start_server(handle, host, port, limit=1 << 26)
                port = server.sockets[0].getsockname()[1]
                servers.append(server)
            break
        except OSError:
            for server in servers:
                server.close()
    print(f"smtp listening on {port}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main())
