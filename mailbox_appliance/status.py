"""What the running appliance tells its admin (through admin_channel.py): `status`, `who`,
`kick ADDRESS` and `auth test ADDRESS` (the password checked by the running appliance's own
checker, as `doveadm auth test` does; no client address is throttled for it)."""

import time

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from mailbox_appliance.admin_channel import CommandError

__all__ = ["ApplianceStatus"]


class ApplianceStatus:

    def __init__(self, version, gate, checker, spool, problems, listeners, clock):
        """*gate*: the session_security.LoginGate (its logged-in sessions); *checker*: the
        twisted.cred checker logins go through; *spool*: the queue's; *problems*: the queue's
        last delivery problems, (time, queue id, address, reply), newest last; *listeners*: a
        function giving [(name, "host:port")] of the listeners bound."""
        self.version = version
        self.gate = gate
        self.checker = checker
        self.spool = spool
        self.problems = problems
        self.listeners = listeners
        self.clock = clock
        self.started = clock.seconds()

    def commands(self):
        return {"status": self.status, "who": self.who, "kick": self.kick, "auth test": self.auth_test}

    def status(self):
        uptime = int(self.clock.seconds() - self.started)
        lines = [f"mailbox-appliance {self.version}, up {uptime // 86400}d {uptime % 86400 // 3600}h "
                 f"{uptime % 3600 // 60}m {uptime % 60}s"]
        lines += [f"listener {name}: {address}" for name, address in self.listeners()]
        by_protocol = {}
        for session in self.gate.sessions:
            by_protocol[session.protocol_name] = by_protocol.get(session.protocol_name, 0) + 1
        lines.append("logged-in sessions: " + (", ".join(f"{protocol} {count}" for protocol, count in
                                                           sorted(by_protocol.items())) or "none"))
        lines.append(self._queue())
        lines.append("last delivery problems:" + ("" if self.problems else " none"))
        lines += [f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))} {queue_id} <{address}>: {reply}"
                  for when, queue_id, address, reply in reversed(self.problems)]
        return "\n".join(lines)

    def _queue(self):
        ids = self.spool.committed_ids()
        if not ids:
            return "queue: empty"
        try:
            oldest = self.spool.read_envelope(ids[0])
        except (KeyError, ValueError):
            return f"queue: {len(ids)} message(s)"
        arrived = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(oldest.arrival))
        return f"queue: {len(ids)} message(s), the oldest {oldest.id} from {arrived}"

    def who(self):
        rows = sorted((user, session.protocol_name, session.client_address, since)
                      for session, (user, since) in self.gate.sessions.items())
        return "\n".join(f"{user}  {protocol}  {client}  since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
                         for user, protocol, client, since in rows) or "no one is logged in"

    def kick(self, address):
        address = address.strip().lower()
        chosen = [session for session, (user, _since) in self.gate.sessions.items() if user == address]
        for session in chosen:
            session.kick()
        return f"kick {address}: {len(chosen)} session{'' if len(chosen) == 1 else 's'} ended"

    def auth_test(self, address, password):
        credentials = UsernamePassword(address.encode("utf-8"), password.encode("utf-8"))

        def passed(avatar_id):
            name = avatar_id.decode("utf-8") if isinstance(avatar_id, bytes) else avatar_id
            return f"auth test {address}: succeeded (user {name})"

        def failed(failure):
            failure.trap(UnauthorizedLogin)
            raise CommandError(f"auth test {address}: failed (no such user, or a wrong password)")

        return self.checker.requestAvatarId(credentials).addCallbacks(passed, failed)
