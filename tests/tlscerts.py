"""Test certificates made on the spot with ``cryptography``: a CA, a server
certificate it signs for localhost / 127.0.0.1 / ::1, and a second CA that
signed nothing here (a client trusting only it must refuse the server)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def client_context(self, trust_other_ca: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the hostname
        ctx.load_verify_locations(self.other_ca_cert if trust_other_ca else self.ca_cert)
        return ctx


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)


def _ca(cn: str) -> tuple[Any, Any]:
    """A self-signed CA certificate and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start, end = _validity()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(cn: str, alt_names: list[Any], usages: list[Any], ca_cert: Any, ca_key: Any) -> tuple[Any, Any]:
    """A certificate for ``cn`` with ``alt_names`` and extended ``usages``, signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start, end = _validity()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(cert: Any, cert_path: Path, key: Any = None, key_path: Path | None = None) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = serialization.Encoding.PEM
    cert_path.write_bytes(cert.public_bytes(pem))
    if key is not None and key_path is not None:
        key_path.write_bytes(key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def make_pki(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert, ca_key = _ca("rudp test CA")
    other_cert, _ = _ca("rudp other CA")
    cert, key = _leaf("localhost", [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.IPAddress(ipaddress.ip_address("10.77.0.1")),  # the TUN bridge's kernel side
        x509.IPAddress(ipaddress.ip_address("10.77.0.2")),
    ], [ExtendedKeyUsageOID.SERVER_AUTH], ca_cert, ca_key)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key",
              directory / "other-ca.pem")
    _write(ca_cert, pki.ca_cert)
    _write(other_cert, pki.other_ca_cert)
    _write(cert, pki.server_cert, key, pki.server_key)
    return pki


@dataclass(frozen=True)
class PeerPki:
    """A CA, a certificate and key per peer name (DNS subjectAltName, for
    TLS server and client use), and a second CA that signed nothing here."""

    ca_cert: Path
    other_ca_cert: Path
    certs: dict[str, tuple[Path, Path]]  # name -> (certificate, key)


def make_peer_pki(directory: Path, names: tuple[str, ...]) -> PeerPki:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert, ca_key = _ca("rudp peers CA")
    _write(ca_cert, directory / "peers-ca.pem")
    _write(_ca("rudp other CA")[0], directory / "peers-other-ca.pem")
    certs = {}
    for peer in names:
        cert, key = _leaf(peer, [x509.DNSName(peer)],
                          [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                          ca_cert, ca_key)
        cert_path, key_path = directory / f"{peer}.pem", directory / f"{peer}.key"
        _write(cert, cert_path, key, key_path)
        certs[peer] = (cert_path, key_path)
    return PeerPki(directory / "peers-ca.pem", directory / "peers-other-ca.pem", certs)
