"""The configuration documents mail clients fetch (each built from client_settings.Servers):

- Thunderbird's autoconfig (https://wiki.mozilla.org/Thunderbird:Autoconfiguration, config-v1.1),
- Outlook's autodiscover POX response (MS-OXDSCLI, the "settings" form for IMAP/SMTP) and its
  JSON v1 redirect,
- Apple's configuration profile with a com.apple.mail.managed payload,
- the MTA-STS policy (RFC 8461 §3.2).

The login is always the whole address (``%EMAILADDRESS%``): that is what users log in with.
"""

import json
import plistlib
import uuid
from xml.sax.saxutils import escape

_THUNDERBIRD_TYPE = {"imap": "imap", "pop3": "pop3", "smtp": "smtp"}


def thunderbird(domain, hostname, servers):
    incoming, outgoing = [], []
    for server in servers:
        kind = "outgoingServer" if server.protocol == "smtp" else "incomingServer"
        block = (f'    <{kind} type="{_THUNDERBIRD_TYPE[server.protocol]}">\n'
                 f"      <hostname>{escape(hostname)}</hostname>\n      <port>{server.port}</port>\n"
                 f"      <socketType>{server.security}</socketType>\n"
                 f"      <authentication>password-cleartext</authentication>\n"
                 f"      <username>%EMAILADDRESS%</username>\n    </{kind}>\n")
        (outgoing if server.protocol == "smtp" else incoming).append(block)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<clientConfig version="1.1">\n'
            f'  <emailProvider id="{escape(domain)}">\n    <domain>{escape(domain)}</domain>\n'
            f"    <displayName>{escape(domain)} mail</displayName>\n"
            f"    <displayShortName>{escape(domain)}</displayShortName>\n"
            + "".join(incoming) + "".join(outgoing) + "  </emailProvider>\n</clientConfig>\n").encode("utf-8")


def outlook(address, hostname, servers):
    protocols = []
    for server in servers:
        if server.protocol == "pop3":
            continue
        protocols.append(
            "      <Protocol>\n"
            f"        <Type>{server.protocol.upper()}</Type>\n        <Server>{escape(hostname)}</Server>\n"
            f"        <Port>{server.port}</Port>\n        <LoginName>{escape(address)}</LoginName>\n"
            "        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n"
            f"        <SSL>{'on' if server.security == 'SSL' else 'off'}</SSL>\n"
            + ("        <Encryption>TLS</Encryption>\n" if server.security == "STARTTLS" else "")
            + "        <AuthRequired>on</AuthRequired>\n      </Protocol>\n")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">\n'
            '  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">\n'
            "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n"
            + "".join(protocols) + "    </Account>\n  </Response>\n</Autodiscover>\n").encode("utf-8")


def outlook_json(hostname, https_port):
    """Autodiscover v2's answer for a mailbox that is not Exchange's: where the POX document is."""
    port = "" if https_port == 443 else f":{https_port}"
    return json.dumps({"Protocol": "AutodiscoverV1",
                       "Url": f"https://{hostname}{port}/autodiscover/autodiscover.xml"}).encode("ascii")


def apple(address, hostname, servers):
    """A profile with one Mail account: IMAP in (implicit TLS if offered), SMTP out."""
    incoming = next((server for server in servers if server.protocol == "imap"), None)
    outgoing = next((server for server in servers if server.protocol == "smtp"), None)
    domain = address.rpartition("@")[2]
    account = {
        "PayloadType": "com.apple.mail.managed", "PayloadVersion": 1,
        "PayloadIdentifier": f"{_reverse(hostname)}.mail.{uuid.uuid5(uuid.NAMESPACE_DNS, address)}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "mail:" + address)).upper(),
        "PayloadDisplayName": f"{address} mail", "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP", "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword", "IncomingMailServerHostName": hostname,
        "IncomingMailServerPortNumber": incoming.port if incoming else 993,
        "IncomingMailServerUseSSL": incoming is None or incoming.security == "SSL",
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword", "OutgoingMailServerHostName": hostname,
        "OutgoingMailServerPortNumber": outgoing.port if outgoing else 465,
        "OutgoingMailServerUseSSL": outgoing is None or outgoing.security == "SSL",
        "OutgoingMailServerUsername": address, "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1, "PayloadContent": [account],
        "PayloadIdentifier": f"{_reverse(hostname)}.profile.{uuid.uuid5(uuid.NAMESPACE_DNS, address)}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "profile:" + address)).upper(),
        "PayloadDisplayName": f"Mail at {domain}", "PayloadOrganization": domain,
        "PayloadRemovalDisallowed": False,
    }
    return plistlib.dumps(profile)


def mta_sts(mode, hostname, max_age):
    """RFC 8461 §3.2: the policy; ``mx`` is our host name, which the certificate names."""
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {hostname}\r\nmax_age: {max_age}\r\n".encode("ascii")


def _reverse(hostname):
    return ".".join(reversed(hostname.split(".")))
