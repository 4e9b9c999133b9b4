"""``dnmf cluster make-certs``: a private CA and one certificate it signed, for the ``tls`` section of a
cluster configuration."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

__all__ = ["make_certificates"]


def make_certificates(folder: str | os.PathLike[str], *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 365) -> dict[str, str]:
    """Write a private CA and one certificate it signed, for TLS between client, scheduler and workers.

    Writes ``ca.pem``, ``cert.pem`` and ``key.pem`` into ``folder`` (created with mode 0700 if missing), and
    returns their paths under the names ``tls`` uses (``ca_file``, ``cert``, ``key``). Each file is written to a
    new file created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (the key with mode 0600) and renamed over the old one,
    so an existing ``key.pem``, whatever its mode, is replaced by a new file readable by its owner only, and a
    link planted there cannot send the key elsewhere.

    Raises
    ------
    FileExistsError
        If one of the three files is a symbolic link: it is left alone.
    PermissionError
        If ``folder`` belongs to another user or others may write to it (they could read or swap the key).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    paths = {"ca_file": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    _check_folder(folder)
    for path in paths.values():
        if path.is_symlink():
            raise FileExistsError(f"{str(path)!r} is a symbolic link; refusing to write a certificate or key "
                                  "through it. Remove it, or choose another folder.")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dnmf cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names = [x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    _write_fresh(paths["key"], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), 0o600)
    _write_fresh(paths["ca_file"], ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_fresh(paths["cert"], cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return {name: str(path) for name, path in paths.items()}


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        return
    status = folder.stat()
    if status.st_uid != os.geteuid() or status.st_mode & 0o022:
        raise PermissionError(f"{str(folder)!r} belongs to uid {status.st_uid} with mode "
                              f"{oct(status.st_mode & 0o777)}: another user could read or replace a key written "
                              "there. Choose a folder of your own that only you can write to.")


def _write_fresh(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file with ``mode`` beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp-{os.urandom(6).hex()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.is_symlink():
            raise FileExistsError(f"{str(path)!r} became a symbolic link while the certificates were made; "
                                  "refusing to replace it.")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
