"""Certificates and the TLS policy: pure checks on the context the listeners use."""

import pytest
from OpenSSL import SSL

from mailbox_appliance import config, tls


def _settings(tmp_path, tls_section=""):
    path = tmp_path / "appliance.conf"
    path.write_text(f"[server]\nhostname = mail.example.test\ndata_dir = {tmp_path / 'data'}\n{tls_section}")
    return config.load(str(path))


def test_self_signed_pair_is_created_once_and_reused(tmp_path):
    settings = _settings(tmp_path)
    tls.context_factory(settings)
    first = (tmp_path / "data" / "tls" / "certificate.pem").read_bytes()
    tls.context_factory(settings)
    assert (tmp_path / "data" / "tls" / "certificate.pem").read_bytes() == first
    assert b"BEGIN CERTIFICATE" in first


def test_protocols_below_tls_1_2_are_disabled(tmp_path):
    """RFC 8996: no TLS 1.0 or 1.1, whatever OpenSSL's system configuration allows."""
    # SSL_CTX_set_options returns the options in force; setting none reads them.
    options = tls.context_factory(_settings(tmp_path)).getContext().set_options(0)
    assert options & SSL.OP_NO_TLSv1 and options & SSL.OP_NO_TLSv1_1


def test_missing_files_name_the_setting(tmp_path):
    settings = _settings(tmp_path, f"[tls]\ncertificate = {tmp_path}/none.pem\nprivate_key = {tmp_path}/none.key\n")
    with pytest.raises(tls.TLSError, match=r"\[tls\] certificate .*none.pem: cannot read it: No such file"):
        tls.context_factory(settings)


def test_a_key_that_does_not_match_is_refused(tmp_path):
    tls.create_self_signed(str(tmp_path / "a.pem"), str(tmp_path / "a.key"), "a.example.test")
    tls.create_self_signed(str(tmp_path / "b.pem"), str(tmp_path / "b.key"), "b.example.test")
    settings = _settings(tmp_path, f"[tls]\ncertificate = {tmp_path}/a.pem\nprivate_key = {tmp_path}/b.key\n")
    with pytest.raises(tls.TLSError, match="does not match"):
        tls.context_factory(settings)


def test_a_file_that_is_not_pem_is_refused(tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate")
    tls.create_self_signed(str(tmp_path / "a.pem"), str(tmp_path / "a.key"), "a.example.test")
    settings = _settings(tmp_path, f"[tls]\ncertificate = {tmp_path}/junk.pem\nprivate_key = {tmp_path}/a.key\n")
    with pytest.raises(tls.TLSError, match=r"\[tls\] certificate .*junk.pem: not a PEM certificate"):
        tls.context_factory(settings)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "mail.example.test"])
def test_the_self_signed_certificate_names_the_loopback_address_the_demo_listens_on(appliance, config_path, name):
    import os
    import socket
    import ssl
    certificate = os.path.join(os.path.dirname(config_path), "data", "tls", "certificate.pem")
    context = ssl.create_default_context(cafile=certificate)      # verifies the name, as fetchmail does
    with socket.create_connection(("127.0.0.1", appliance.ports["imaps"]), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as wrapped:
            assert wrapped.recv(64).startswith(b"* OK")


def test_a_client_offering_alpn_connects_to_every_tls_listener(appliance):
    """Current Twisted failed every handshake in which the client offered ALPN (curl offers h2
    and http/1.1; a mail client may offer imap) with an internal_error alert."""
    import socket

    from conftest import unverified_tls
    for name, greeting in (("imaps", b"* OK"), ("pop3s", b"+OK"), ("submissions", b"220 "), ("https", None)):
        context = unverified_tls()
        context.set_alpn_protocols(["imap", "h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", appliance.ports[name]), timeout=10) as raw:
            with context.wrap_socket(raw) as wrapped:
                assert wrapped.selected_alpn_protocol() is None, name
                if greeting is not None:
                    assert wrapped.recv(64).startswith(greeting), name
    assert not any("Traceback" in line for line in appliance.lines)
