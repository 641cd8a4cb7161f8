#!/usr/bin/env bash
# End-to-end test of the Debian package, as root on a Debian 12 machine (CI runs it from .ci/run):
#
#   build (packaging/build-deb.sh) -> lintian -> apt-get install ./dist/...deb -> check the user,
#   directories, files, permissions, plugin cache and unit -> start the service the way the unit
#   does (no systemd here: its ExecStart as its User, with its capability) -> add a domain and a
#   user with the installed admin command -> mail over SMTP to 127.0.0.1:25 -> the Maildir ->
#   upgrade to a rebuilt, higher version -> same config, certificate, users and mail -> remove
#   -> purge (data kept) -> reinstall (same mail) -> confirmed purges (debconf, flag) -> gone.
#
# It changes the machine: it installs and purges the package mailbox-appliance and binds ports
# 25, 587, 465, 143, 993, 110, 995, 4190, 443 and 80 on every address while it runs.  Traffic goes to 127.0.0.1
# only.  Leftovers of an earlier installation (mail!) stop it unless CI=true or
# MAILBOX_APPLIANCE_TEST_FORCE=yes, which purge them first.
set -euo pipefail

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV MAILBOX_APPLIANCE_CONFIG MAILBOX_APPLIANCE_PURGE_DATA
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

SOURCE=$(cd "$(dirname "$0")/.." && pwd)
PACKAGE=mailbox-appliance
SERVICE_USER=mailbox-appliance
CONFIG=/etc/mailbox-appliance/mailbox-appliance.conf
TLS_DIR=/etc/mailbox-appliance/tls
DATA=/var/lib/mailbox-appliance
UNIT=/lib/systemd/system/mailbox-appliance.service
PLUGIN=/usr/lib/python3/dist-packages/twisted/plugins/mailbox_appliance_plugin.py
PLUGIN_CACHE=/usr/lib/python3/dist-packages/twisted/plugins/dropin.cache
PORTS=(25 587 465 143 993 110 995 4190 443 80)
DOMAIN=example.test
ADDRESS=alice@$DOMAIN
MAILDIR=$DATA/mail/$DOMAIN/alice
MAILDROP=/var/spool/mailbox-appliance/maildrop
START_TIME=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailbox-appliance-test-deb.XXXXXX")
SERVICE_PID=
SERVICE_LOG=
PASSED=0
PASSWORD='correct horse battery staple'

# -- helpers ---------------------------------------------------------------------------------

step() { printf '\n=== [%3ds] %s\n' $((SECONDS - START_TIME)) "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
ok() { PASSED=$((PASSED + 1)); echo "ok: $*"; }
check() { # check DESCRIPTION COMMAND...: the command must succeed
    local what=$1
    shift
    "$@" || fail "$what"
    ok "$what"
}
expect() { # expect DESCRIPTION ACTUAL EXPECTED
    [[ $2 == "$3" ]] || fail "$1: expected '$3', got '$2'"
    ok "$1 ($2)"
}
owner_mode() { stat -c '%U:%G %a' "$1"; }
package_status() { dpkg-query -W -f='${db:Status-Abbrev}' "$PACKAGE" 2>/dev/null | tr -d ' ' || true; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

port_in_use() { # port_in_use PORT: something accepts connections on 127.0.0.1:PORT
    python3 -c 'import socket, sys
s = socket.socket(); s.settimeout(2)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

cleanup() {
    local status=$?
    if [[ -n $SERVICE_PID ]]; then  # stop the service this script started, by its pid
        kill -TERM "$SERVICE_PID" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SERVICE_PID" 2>/dev/null || true
    fi
    [[ -n ${DNS_PID:-} ]] && kill "$DNS_PID" 2>/dev/null || true
    if ((status != 0)); then
        echo "test-deb.sh: FAILED after $((SECONDS - START_TIME))s; the package is left as it is for inspection" >&2
        for log in "$WORK"/service-*.log; do
            [[ -f $log ]] && { echo "--- $log (last 40 lines)" >&2; tail -n 40 "$log" >&2; }
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

unit_value() { sed -n "s/^$1=//p" "$UNIT" | tail -n1; }

# Start the service the way the unit does, without systemd: its ExecStart, in its
# WorkingDirectory, as its User and Group, with its AmbientCapabilities (CAP_NET_BIND_SERVICE)
# and NoNewPrivileges.  Waits (bounded) for every listener's log line.
start_service() {
    local name=$1 exec_start user group directory umask
    local -a command
    exec_start=$(unit_value ExecStart)
    user=$(unit_value User)
    group=$(unit_value Group)
    directory=$(unit_value WorkingDirectory)
    umask=$(unit_value UMask)
    expect "unit AmbientCapabilities" "$(unit_value AmbientCapabilities)" CAP_NET_BIND_SERVICE
    expect "unit NoNewPrivileges" "$(unit_value NoNewPrivileges)" yes
    read -ra command <<<"$exec_start"
    for port in "${PORTS[@]}"; do
        port_in_use "$port" && fail "port $port is already in use on this machine (another MTA or IMAP/POP3 server?)"
    done
    SERVICE_LOG="$WORK/service-$name.log"
    : >"$SERVICE_LOG"
    echo "starting as $user:$group in $directory, umask $umask: $exec_start"
    (cd "$directory" && umask "$umask" && exec setpriv --reuid="$user" --regid="$group" --init-groups \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service --no-new-privs \
        -- "${command[@]}") >"$SERVICE_LOG" 2>&1 &
    SERVICE_PID=$!
    local deadline=$((SECONDS + 90)) listening=0
    while ((SECONDS < deadline)); do
        listening=$(grep -c ' listening on ' "$SERVICE_LOG" || true)
        ((listening >= ${#PORTS[@]})) && break
        kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$SERVICE_LOG" >&2; SERVICE_PID=; fail "the service exited while starting"; }
        sleep 0.2
    done
    ((listening >= ${#PORTS[@]})) || { cat "$SERVICE_LOG" >&2; fail "only $listening of ${#PORTS[@]} listeners within 90s"; }
    grep ' listening on ' "$SERVICE_LOG" | sed 's/^/  /'
    expect "service process user" "$(stat -c %U "/proc/$SERVICE_PID")" "$user"
    for port in "${PORTS[@]}"; do
        grep -q " listening on 0\.0\.0\.0:$port " "$SERVICE_LOG" || fail "no listener on 0.0.0.0:$port"
    done
    ok "the service (pid $SERVICE_PID) listens on every address on ports ${PORTS[*]}"
}

stop_service() {
    [[ -n $SERVICE_PID ]] || return 0
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$SERVICE_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill -KILL "$SERVICE_PID" 2>/dev/null || true
        SERVICE_PID=
        fail "the service did not stop within 30s of SIGTERM"
    fi
    wait "$SERVICE_PID" 2>/dev/null || true
    SERVICE_PID=
    ok "the service stopped on SIGTERM"
}

# wait_for_log TEXT: TEXT appears in the service's log (bounded wait).
wait_for_log() {
    local deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        grep -qF "$1" "$SERVICE_LOG" && { ok "service log: $1"; return 0; }
        sleep 0.2
    done
    fail "'$1' did not appear in the service's log within 30s"
}

# send_mail TOKEN: one message to $ADDRESS over SMTP on 127.0.0.1:25, with STARTTLS.
send_mail() {
    python3 - "$1" "$ADDRESS" <<'EOF'
import smtplib, ssl, sys
from email.message import EmailMessage

token, recipient = sys.argv[1], sys.argv[2]
message = EmailMessage()
message["From"] = "sender@example.org"
message["To"] = recipient
message["Subject"] = f"package test {token}"
message["Message-ID"] = f"<{token}@example.org>"
message.set_content(f"Sent by packaging/test-deb.sh, token {token}.\n")
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the package's certificate is self-signed
with smtplib.SMTP("127.0.0.1", 25, local_hostname="client.example.org", timeout=30) as smtp:
    code, banner = smtp.ehlo()
    assert code == 250, (code, banner)
    assert smtp.has_extn("starttls"), "no STARTTLS on port 25"
    smtp.starttls(context=context)
    print(f"  STARTTLS: {smtp.sock.version()}")
    refused = smtp.send_message(message, "sender@example.org", [recipient])
    assert not refused, refused
print(f"  sent <{token}@example.org> to {recipient} via 127.0.0.1:25")
EOF
}

# wait_for_mail TOKEN: the message with TOKEN is in $MAILDIR/new (bounded wait); prints its path.
wait_for_mail() {
    local deadline=$((SECONDS + 30)) file
    while ((SECONDS < deadline)); do
        file=$(grep -l -F "$1" "$MAILDIR"/new/* 2>/dev/null | head -n1 || true)
        [[ -n $file ]] && { echo "$file"; return 0; }
        sleep 0.2
    done
    fail "the message $1 did not arrive in $MAILDIR/new within 30s"
}

# read_over_imap TOKEN...: log in as $ADDRESS over IMAPS (127.0.0.1:993) and find each message.
read_over_imap() {
    python3 - "$ADDRESS" "$PASSWORD" "$@" <<'EOF'
import imaplib, ssl, sys

address, password, *tokens = sys.argv[1:]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the package's certificate is self-signed
with imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context=context, timeout=30) as imap:
    imap.login(address, password)
    imap.select("INBOX")
    for token in tokens:
        status, found = imap.uid("SEARCH", None, "HEADER", "Message-ID", f"<{token}@example.org>")
        assert status == "OK" and len(found[0].split()) == 1, (token, status, found)
        status, data = imap.uid("FETCH", found[0].split()[0], "(BODY.PEEK[TEXT])")
        assert status == "OK" and token.encode() in data[0][1], (token, data)
        print(f"  read <{token}@example.org> over IMAPS as {address}")
    imap.logout()
EOF
}

# local_mail TOKEN: cron's mail to root, through /usr/sbin/sendmail as cron runs it, as nobody.
local_mail() {
    printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> job %s\n\nCron output, token %s.\n' "$1" "$1" \
        | setpriv --reuid=nobody --regid=nogroup --clear-groups -- sendmail -t -oi \
        || fail "sendmail -t -oi as nobody"
    echo "  nobody | sendmail -t -oi (token $1)"
}

# mail_file TOKEN: the Maildir file holding TOKEN (in new/ or, once an IMAP client saw it, cur/).
mail_file() { grep -l -F "$1" "$MAILDIR"/new/* "$MAILDIR"/cur/* 2>/dev/null | head -n1; }

admin() { echo "# mailbox-appliance-admin $*" >&2; mailbox-appliance-admin "$@"; }

# -- preconditions ---------------------------------------------------------------------------

step "preconditions"
[[ $(id -u) == 0 ]] || fail "run as root (it installs and purges the package)"
grep -q '^12' /etc/debian_version || fail "Debian 12 expected, /etc/debian_version says $(cat /etc/debian_version)"
if [[ -n $(package_status) ]] || [[ -e $DATA || -e /etc/mailbox-appliance ]] || getent passwd "$SERVICE_USER" >/dev/null; then
    if [[ ${CI:-} == true || ${MAILBOX_APPLIANCE_TEST_FORCE:-} == yes ]]; then
        echo "purging an earlier installation and its data"
        if [[ -n $(package_status) ]]; then MAILBOX_APPLIANCE_PURGE_DATA=yes apt-get purge -y -q "$PACKAGE"; fi
        rm -rf "$DATA" /etc/mailbox-appliance
        if getent passwd "$SERVICE_USER" >/dev/null; then deluser --quiet --system "$SERVICE_USER"; fi
        if getent group "$SERVICE_USER" >/dev/null; then delgroup --quiet --system "$SERVICE_USER"; fi
    else
        fail "mailbox-appliance is (or was) installed here; this test purges it with its mail: rerun with MAILBOX_APPLIANCE_TEST_FORCE=yes"
    fi
fi
ok "no earlier installation"

# -- build -----------------------------------------------------------------------------------

step "build the package and its upgrade"
cd "$SOURCE"
VERSION=$(sed -n 's/^version[[:space:]]*=[[:space:]]*//p' setup.cfg | head -n1)
UPGRADE_VERSION="$VERSION+test1"
DEB=dist/${PACKAGE}_${VERSION}_all.deb
UPGRADE_DEB=dist/${PACKAGE}_${UPGRADE_VERSION}_all.deb
packaging/build-deb.sh >"$WORK/build.log" 2>&1 || { tail -n 60 "$WORK/build.log" >&2; fail "packaging/build-deb.sh"; }
MAILBOX_APPLIANCE_DEB_VERSION=$UPGRADE_VERSION packaging/build-deb.sh >"$WORK/build-upgrade.log" 2>&1 \
    || { tail -n 60 "$WORK/build-upgrade.log" >&2; fail "packaging/build-deb.sh for $UPGRADE_VERSION"; }
check "built $DEB" test -s "$DEB"
check "built $UPGRADE_DEB" test -s "$UPGRADE_DEB"
check "$DEB is Architecture all" test "$(dpkg-deb -f "$DEB" Architecture)" = all
# Every requirement in setup.cfg's install_requires must be in Depends, under Debian's name for it
# (dh-python's table of distribution names), so a new dependency cannot be forgotten there.
python3 - "$DEB" <<'EOF' || fail "Depends lacks a requirement of setup.cfg (above)"
import configparser, re, subprocess, sys

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

table = {}
with open("/usr/share/dh-python/dist/cpython3_fallback", encoding="utf-8") as handle:
    for line in handle:
        parts = line.split()
        if len(parts) >= 2:
            table.setdefault(norm(parts[0]), parts[1])
# dh-python's table lacks pyspf, which Debian packages as python3-spf.
table.setdefault("pyspf", "python3-spf")
setup = configparser.ConfigParser()
setup.read("setup.cfg")
depends = subprocess.run(["dpkg-deb", "-f", sys.argv[1], "Depends"], check=True, capture_output=True, text=True).stdout
packages = {item.split()[0] for item in re.split(r"[,|]", depends) if item.strip()}
missing = []
for requirement in setup["options"]["install_requires"].splitlines():
    name = re.match(r"\s*([A-Za-z0-9._-]*)", requirement).group(1)
    if name:
        package = table.get(norm(name), "python3-" + norm(name))
        print(f"  setup.cfg {requirement.strip()} -> {package}: {'ok' if package in packages else 'MISSING'}")
        missing += [] if package in packages else [package]
sys.exit(1 if missing else 0)
EOF
ok "Depends covers setup.cfg's install_requires"
dpkg-deb -c "$DEB" | grep -q 'dropin\.cache' && fail "$DEB ships a dropin.cache"
ok "no dropin.cache in the package"
check "$DEB has the twisted-plugins-cache trigger" \
    sh -c "dpkg-deb --ctrl-tarfile '$DEB' | tar -xOf - ./triggers | grep -qx 'activate-noawait twisted-plugins-cache'"

step "lintian"
command -v lintian >/dev/null || apt-get install -y -q --no-install-recommends lintian >"$WORK/lintian-install.log" 2>&1
if ! lintian --fail-on error,warning --info --display-experimental --pedantic "$DEB" >"$WORK/lintian.log" 2>&1; then
    cat "$WORK/lintian.log" >&2
    fail "lintian reports errors or warnings"
fi
grep -v 'running with root privileges' "$WORK/lintian.log" | sed 's/^/  /' || true
ok "lintian: no errors, no warnings"

# -- install ---------------------------------------------------------------------------------

step "install ./$DEB"
apt-get install -y -q "./$DEB" </dev/null >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "apt-get install ./$DEB"; }
grep -i 'certificate' "$WORK/install.log" || true
expect "package state" "$(package_status)" ii
expect "installed version" "$(dpkg-query -W -f='${Version}' "$PACKAGE")" "$VERSION"

step "user, directories, files and permissions"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd "$SERVICE_USER") || fail "no user $SERVICE_USER"
check "$SERVICE_USER is a system user (uid $uid)" test "$uid" -lt 1000
expect "group of $SERVICE_USER" "$(getent group "$gid" | cut -d: -f1)" "$SERVICE_USER"
expect "home of $SERVICE_USER" "$home" "$DATA"
expect "shell of $SERVICE_USER" "$shell" /usr/sbin/nologin
expect "$DATA" "$(owner_mode "$DATA")" "mailbox-appliance:mailbox-appliance 750"
expect "$CONFIG" "$(owner_mode "$CONFIG")" "root:root 644"
dpkg-query -W -f='${Conffiles}\n' "$PACKAGE" | grep -q " $CONFIG " || fail "$CONFIG is not a conffile"
ok "$CONFIG is a conffile"
for fail2ban in /etc/fail2ban/filter.d/mailbox-appliance.conf /etc/fail2ban/jail.d/mailbox-appliance.conf; do
    dpkg-query -W -f='${Conffiles}\n' "$PACKAGE" | grep -q " $fail2ban " || fail "$fail2ban is not a conffile"
done
grep -q '^enabled = false' /etc/fail2ban/jail.d/mailbox-appliance.conf || fail "the fail2ban jail is not off by default"
ok "the fail2ban filter and jail (off) are conffiles"
for port in "${PORTS[@]}"; do
    grep -Eq "^[a-z0-9]+ = tcp:$port\$" "$CONFIG" || fail "$CONFIG does not listen on tcp:$port"
done
ok "$CONFIG listens on every address on ports ${PORTS[*]}"
check "$CONFIG: data_dir = $DATA" grep -qx "data_dir = $DATA" "$CONFIG"
expect "$TLS_DIR" "$(owner_mode "$TLS_DIR")" "root:mailbox-appliance 750"
expect "$TLS_DIR/private-key.pem" "$(owner_mode "$TLS_DIR/private-key.pem")" "root:mailbox-appliance 640"
expect "$TLS_DIR/certificate.pem" "$(owner_mode "$TLS_DIR/certificate.pem")" "root:root 644"
expect "certificate subject (the machine's name)" \
    "$(python3 -c 'import sys; from cryptography import x509
print(x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read()).subject.rfc4514_string())' "$TLS_DIR/certificate.pem")" \
    "CN=$(python3 -c 'import socket; print(socket.getfqdn().lower().rstrip("."))')"
check "the plugin is installed: $PLUGIN" test -f "$PLUGIN"
check "python3-twisted rebuilt $PLUGIN_CACHE with the plugin (trigger)" grep -aq mailbox_appliance_plugin "$PLUGIN_CACHE"
dpkg -L "$PACKAGE" | grep -q dropin.cache && fail "the package owns a dropin.cache"
check "twistd3 lists the mailbox-appliance plugin" sh -c "twistd3 --help | grep -q '^ *mailbox-appliance '"
expect "admin command on PATH" "$(command -v mailbox-appliance-admin)" /usr/sbin/mailbox-appliance-admin
check "the unit $UNIT" test -f "$UNIT"
expect "unit ExecStart" "$(unit_value ExecStart)" \
    "/usr/bin/twistd3 --nodaemon --pidfile= mailbox-appliance --config /etc/mailbox-appliance/mailbox-appliance.conf"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
    ok "systemd-analyze verify $UNIT"
else
    echo "skipped: systemd-analyze verify (systemd is not installed)"
fi

step "accounts with the installed admin command"
admin domain add "$DOMAIN"
printf '%s\n' "$PASSWORD" | admin user add "$ADDRESS" --password-stdin
admin check-config | sed 's/^/  /'
expect "admin user list" "$(admin user list)" "$ADDRESS  0 of no limit  never logged in"
for file in "$DATA/users" "$DATA/domains"; do
    expect "$file" "$(owner_mode "$file")" "mailbox-appliance:mailbox-appliance 640"
done
check "Maildir $MAILDIR/new" test -d "$MAILDIR/new"
expect "owner of $MAILDIR" "$(stat -c %U "$MAILDIR")" "$SERVICE_USER"

# -- run, mail -------------------------------------------------------------------------------

step "a DNS server on loopback for the appliance's lookups"
# Port 25 checks the sender (SPF, DKIM, DMARC), which asks DNS: the installed appliance must
# ask a server on loopback, never the internet's (the test message's example.org publishes
# SPF -all and DMARC p=reject).  It answers SERVFAIL at once: each check is a temperror.
echo '{"servfail_all": true}' >"$WORK/zone.json"
exec {DNS_OUT}< <(exec python3 tests/peers/dns_server.py "$WORK/zone.json" 2>&1)
DNS_PID=$!
read -r -t 30 -u "$DNS_OUT" dns_line || fail "the DNS server did not start"
[[ $dns_line == "dns listening on 127.0.0.1:"* ]] || fail "the DNS server said: $dns_line"
printf '\n[outbound]\nresolver = %s\n' "${dns_line##* }" >>"$CONFIG"
ok "$CONFIG asks ${dns_line##* }"

step "start the service as the unit does"
start_service first

step "mail over SMTP to 127.0.0.1:25"
TOKEN1="first-$(date +%s)-$$"
send_mail "$TOKEN1"
MAIL1=$(wait_for_mail "$TOKEN1")
ok "delivered to $MAIL1"
# The sender checks ran in their checker processes (as the service user, Debian's libraries):
# DNS answers SERVFAIL here, so each is a temperror, recorded all the same.
check "the sender checks' verdict is in the message" grep -q '^Authentication-Results: ' "$MAIL1"
check "the checks met DNS trouble as temperrors" grep -q 'spf=temperror' "$MAIL1"
expect "owner of the delivered file" "$(stat -c %U:%G "$MAIL1")" "mailbox-appliance:mailbox-appliance"
check "the delivered file is not world-readable ($(stat -c %a "$MAIL1"))" test $((0$(stat -c %a "$MAIL1") & 07)) = 0
# "systemctl reload": the unit's ExecReload ($MAINPID: the service), run as the unit's user.
read -ra reload <<<"$(unit_value ExecReload | sed "s/\\\$MAINPID/$SERVICE_PID/")"
echo "reloading: ${reload[*]}"
setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" --init-groups --no-new-privs -- "${reload[@]}" \
    || fail "ExecReload: $(unit_value ExecReload)"
wait_for_log "SIGHUP: users, aliases and domains files re-read"
check "the service is still running after the reload" kill -0 "$SERVICE_PID"
expect "the admin (root, as the service user) reaches the service over $DATA/control.sock" \
    "$(admin queue flush)" "flush: 0 queued messages being tried now"
expect "$DATA/control.sock" "$(owner_mode "$DATA/control.sock")" "mailbox-appliance:mailbox-appliance 600"

step "sendmail for local programs, as an unprivileged user"
expect "sendmail on PATH" "$(command -v sendmail)" /usr/sbin/sendmail
for link in /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do
    expect "$link" "$(readlink -f "$link")" /usr/sbin/sendmail
done
check "the package provides mail-transport-agent" \
    sh -c "dpkg-query -W -f='\${Provides}' $PACKAGE | grep -qw mail-transport-agent"
expect "$MAILDROP" "$(owner_mode "$MAILDROP")" "mailbox-appliance:mailbox-appliance 1733"
TOKEN_CRON="cron-$(date +%s)-$$"
local_mail "$TOKEN_CRON"
MAIL_CRON=$(wait_for_mail "$TOKEN_CRON")
ok "root's mail (alias made by the first user add) delivered to $MAIL_CRON"
check "the bare From: root got the primary domain" grep -q '^From: Cron Daemon <root@localhost>' "$MAIL_CRON"
check "the Received field names nobody's user id" grep -q "from userid $(id -u nobody))" "$MAIL_CRON"
expect "mailq" "$(mailq)" "the queue is empty"
stop_service
TOKEN_DOWN="down-$(date +%s)-$$"
local_mail "$TOKEN_DOWN"
expect "the message waits in $MAILDROP while the service is stopped" "$(find "$MAILDROP" -type f | wc -l)" 1
flush_stopped=$(admin queue flush 2>&1) && fail "queue flush with the service stopped succeeded: $flush_stopped"
[[ $flush_stopped == *"the appliance is not running"* ]] || fail "queue flush with the service stopped: $flush_stopped"
ok "queue flush with the service stopped says so"

# -- upgrade ---------------------------------------------------------------------------------

step "upgrade to $UPGRADE_VERSION"
echo "# a local change the upgrade must keep" >>"$CONFIG"
declare -A BEFORE
for file in "$CONFIG" "$TLS_DIR/certificate.pem" "$TLS_DIR/private-key.pem" "$DATA/users" "$DATA/domains" "$MAIL1"; do
    BEFORE[$file]=$(sha "$file")
done
apt-get install -y -q "./$UPGRADE_DEB" </dev/null >"$WORK/upgrade.log" 2>&1 || { cat "$WORK/upgrade.log" >&2; fail "apt-get install ./$UPGRADE_DEB"; }
expect "installed version" "$(dpkg-query -W -f='${Version}' "$PACKAGE")" "$UPGRADE_VERSION"
for file in "${!BEFORE[@]}"; do
    expect "unchanged by the upgrade: $file" "$(sha "$file")" "${BEFORE[$file]}"
done
[[ -z $(find /etc/mailbox-appliance -name '*.dpkg-*') ]] || fail "dpkg left $(find /etc/mailbox-appliance -name '*.dpkg-*')"
ok "no .dpkg-new/.dpkg-dist files"
expect "$DATA after the upgrade" "$(owner_mode "$DATA")" "mailbox-appliance:mailbox-appliance 750"
start_service upgraded
wait_for_mail "$TOKEN_DOWN" >/dev/null
ok "the message sendmail left while the service was stopped was delivered at its start"
TOKEN2="second-$(date +%s)-$$"
send_mail "$TOKEN2"
MAIL2=$(wait_for_mail "$TOKEN2")
ok "delivered to $MAIL2"
check "the first message is still there" test -f "$MAIL1"
read_over_imap "$TOKEN1" "$TOKEN2" || fail "reading the mail back over IMAP"
ok "both messages read back over IMAP after the upgrade"
stop_service

# -- remove, purge ---------------------------------------------------------------------------

step "apt-get remove"
apt-get remove -y -q "$PACKAGE" </dev/null >"$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log" >&2; fail "apt-get remove"; }
expect "package state" "$(package_status)" rc
check "the plugin is gone" test ! -e "$PLUGIN"
grep -aq mailbox_appliance_plugin "$PLUGIN_CACHE" && fail "$PLUGIN_CACHE still lists the removed plugin"
ok "python3-twisted rebuilt $PLUGIN_CACHE without the plugin (trigger)"
check "remove keeps $CONFIG" test -f "$CONFIG"
check "remove keeps the mail" test -n "$(mail_file "$TOKEN1")"
check "remove keeps the user" sh -c "getent passwd $SERVICE_USER >/dev/null"

step "apt-get purge, not confirmed (debconf default: keep)"
apt-get purge -y -q "$PACKAGE" </dev/null >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "apt-get purge"; }
grep 'mailbox-appliance: kept' "$WORK/purge.log" || fail "purge did not say what it kept"
expect "package state" "$(package_status)" ""
check "purge removes the conffile $CONFIG" test ! -e "$CONFIG"
check "unconfirmed purge keeps the mail" test -n "$(mail_file "$TOKEN1")"
check "unconfirmed purge keeps the users file" test -f "$DATA/users"
check "unconfirmed purge keeps the key" test -f "$TLS_DIR/private-key.pem"
check "unconfirmed purge keeps the user" sh -c "getent passwd $SERVICE_USER >/dev/null"

step "reinstall: the same mail, users and certificate"
apt-get install -y -q "./$UPGRADE_DEB" </dev/null >"$WORK/reinstall.log" 2>&1 || { cat "$WORK/reinstall.log" >&2; fail "apt-get install ./$UPGRADE_DEB"; }
expect "the reinstalled users" "$(admin user list | cut -d" " -f1)" "$ADDRESS"
expect "the certificate is kept" "$(sha "$TLS_DIR/certificate.pem")" "${BEFORE[$TLS_DIR/certificate.pem]}"
check "the mail is there" test -n "$(mail_file "$TOKEN1")"
grep -q 'a local change the upgrade must keep' "$CONFIG" && fail "the purged local change is back"
ok "$CONFIG is the packaged one again"

step "apt-get purge, confirmed through debconf (preseeded)"
echo "$PACKAGE mailbox-appliance/purge-data boolean true" | debconf-set-selections
apt-get purge -y -q "$PACKAGE" </dev/null >"$WORK/purge-debconf.log" 2>&1 || { cat "$WORK/purge-debconf.log" >&2; fail "apt-get purge"; }
grep 'mailbox-appliance: removed' "$WORK/purge-debconf.log" || fail "the confirmed purge did not say what it removed"
check "confirmed purge removes $DATA" test ! -e "$DATA"
check "confirmed purge removes /etc/mailbox-appliance" test ! -e /etc/mailbox-appliance
check "confirmed purge removes /var/spool/mailbox-appliance" test ! -e /var/spool/mailbox-appliance
check "confirmed purge removes the user" sh -c "! getent passwd $SERVICE_USER"
check "confirmed purge removes the group" sh -c "! getent group $SERVICE_USER"

step "apt-get purge, confirmed with MAILBOX_APPLIANCE_PURGE_DATA=yes"
apt-get install -y -q "./$DEB" </dev/null >"$WORK/install-2.log" 2>&1 || { cat "$WORK/install-2.log" >&2; fail "apt-get install ./$DEB"; }
check "a fresh installation has no users" test -z "$(admin user list)"
MAILBOX_APPLIANCE_PURGE_DATA=yes apt-get purge -y -q "$PACKAGE" </dev/null >"$WORK/purge-flag.log" 2>&1 \
    || { cat "$WORK/purge-flag.log" >&2; fail "apt-get purge"; }
check "purge with the flag removes $DATA and /etc/mailbox-appliance" test ! -e "$DATA" -a ! -e /etc/mailbox-appliance
check "purge with the flag removes the user" sh -c "! getent passwd $SERVICE_USER"
expect "package state" "$(package_status)" ""

step "done"
for port in "${PORTS[@]}"; do
    port_in_use "$port" && fail "something still listens on port $port"
done
echo "test-deb.sh: all checks passed in $((SECONDS - START_TIME))s"
echo "packaging: $PASSED passed, 0 failed"
