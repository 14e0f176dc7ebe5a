"""The TLS context a kubeconfig gives: which CAs verify the API server."""

from __future__ import annotations

import datetime
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gitmoor.kube import ClusterConfig


def _ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_the_kubeconfig_ca_alone_verifies_the_server() -> None:
    # certificate-authority-data pins the cluster's CA: a certificate that some
    # public CA of the system bundle signed must not pass for the API server.
    ctx = ClusterConfig(server="https://127.0.0.1:6443", ca_pem=_ca_pem()).ssl_context()
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname


def test_without_a_ca_the_system_bundle_verifies_the_server() -> None:
    ctx = ClusterConfig(server="https://k8s.example.com").ssl_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname
    default = ssl.create_default_context()
    assert ctx.cert_store_stats() == default.cert_store_stats()


def test_insecure_skip_tls_verify_checks_nothing() -> None:
    ctx = ClusterConfig(
        server="https://127.0.0.1:6443", insecure_skip_tls_verify=True
    ).ssl_context()
    assert ctx.verify_mode is ssl.CERT_NONE
    assert not ctx.check_hostname
