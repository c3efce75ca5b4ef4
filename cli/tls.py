"""``dockyard tls init DIR``: a CA, a server and a client certificate for ``--tlsverify``.

A quick start for TLS on ``tcp://`` (the steps of Docker's "Protect the Docker daemon socket"
guide, done with the ``cryptography`` package): ECDSA P-256 keys, SHA-256 signatures, the files
named as Docker names them so that ``DOCKER_CERT_PATH=DIR`` works for the clients::

    ca.pem  ca-key.pem                  the certificate authority
    server-cert.pem  server-key.pem     dockyardd --tlsverify --tlscacert ca.pem --tlscert ... --tlskey ...
    cert.pem  key.pem                   the client's (docker/dockyard --tlsverify, DOCKER_CERT_PATH)

The server certificate names ``localhost``, ``127.0.0.1``, ``::1``, this machine's host name and
every ``--hostname``. Keys are written mode 0600, certificates 0644; nothing existing is
overwritten.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import socket

import click

FILES = ("ca.pem", "ca-key.pem", "server-cert.pem", "server-key.pem", "cert.pem", "key.pem")


def _names(extra: tuple[str, ...]) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra]
    return list(dict.fromkeys(n for n in names if n))


def _san(names: list[str]):  # noqa: ANN202
    from cryptography import x509
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def _cert(subject: str, key, issuer_name, issuer_key, days: int, *, ca: bool = False,  # noqa: ANN001
          usage=None, san=None):  # noqa: ANN001,ANN202
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                          key_cert_sign=False, crl_sign=False, content_commitment=False,
                                          data_encipherment=False, key_agreement=True,
                                          encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if san is not None:
        b = b.add_extension(san, critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # whatever the umask


@click.group(name="tls")
def tls_group() -> None:
    """TLS certificates for dockyardd's tcp:// listeners."""


@tls_group.command(name="init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--hostname", "hostnames", multiple=True, metavar="NAME",
              help="another DNS name or IP address the server certificate is valid for "
                   "(localhost, 127.0.0.1, ::1 and this host's name always are)")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650),
              help="how long the certificates are valid")
def init(directory: str, hostnames: tuple[str, ...], days: int) -> None:
    """Make a CA, a server and a client certificate in DIRECTORY."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    os.makedirs(directory, mode=0o700, exist_ok=True)
    taken = [f for f in FILES if os.path.lexists(os.path.join(directory, f))]
    if taken:
        raise click.ClickException(f"{directory} already holds {', '.join(taken)}: not overwriting")
    names = _names(hostnames)
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("dockyard CA", ca_key, None, ca_key, days, ca=True)
    server = _cert(names[0], server_key, ca.subject, ca_key, days,
                   usage=ExtendedKeyUsageOID.SERVER_AUTH, san=_san(names))
    client = _cert("client", client_key, ca.subject, ca_key, days, usage=ExtendedKeyUsageOID.CLIENT_AUTH)

    def pem_key(k) -> bytes:  # noqa: ANN001
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    def pem_cert(c: x509.Certificate) -> bytes:
        return c.public_bytes(serialization.Encoding.PEM)

    for name, data, mode in (("ca-key.pem", pem_key(ca_key), 0o600), ("ca.pem", pem_cert(ca), 0o644),
                             ("server-key.pem", pem_key(server_key), 0o600),
                             ("server-cert.pem", pem_cert(server), 0o644),
                             ("key.pem", pem_key(client_key), 0o600), ("cert.pem", pem_cert(client), 0o644)):
        _write(os.path.join(directory, name), data, mode)
    d = os.path.abspath(directory)
    click.echo(f"server certificate for: {', '.join(names)}\n"
               f"  dockyardd --tlsverify --tlscacert {d}/ca.pem --tlscert {d}/server-cert.pem "
               f"--tlskey {d}/server-key.pem -H tcp://0.0.0.0:2376\n"
               f"  DOCKER_CERT_PATH={d} DOCKER_TLS_VERIFY=1 dockyard -H tcp://HOST:2376 ps")
