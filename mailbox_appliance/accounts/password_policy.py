"""Which new passwords the admin command refuses: shorter than MINIMUM_LENGTH, or one of the
passwords guessed first (a short list of the most common ones, as leaked-password lists rank
them).  Every account is reachable from the internet over IMAP, POP3 and submission; the login
throttle slows guessing, it does not make "123456" safe."""

MINIMUM_LENGTH = 8

COMMON = frozenset("""
12345678 123456789 1234567890 0123456789 87654321 11111111 00000000 12341234 11223344 99999999
password password1 password12 password123 passw0rd p@ssw0rd p@ssword qwertyui qwerty12
qwerty123 qwertyuiop 1q2w3e4r 1qaz2wsx zaq12wsx asdfghjk asdfasdf iloveyou abcd1234 abc12345
abcdefgh aaaaaaaa sunshine princess football baseball welcome1 welcome123 letmein1 trustno1
starwars superman dragon12 master12 monkey12 changeme changeme1 computer internet michael1
jennifer 123qweasd qweasdzxc admin123 administrator secret12 mailbox1 postmaster
""".split())


def weakness(password):
    """Why *password* may not be used, or None."""
    if len(password) < MINIMUM_LENGTH:
        return f"a password needs at least {MINIMUM_LENGTH} characters"
    if password.lower() in COMMON:
        return "that password is on the list of the most common ones; choose another"
    return None
