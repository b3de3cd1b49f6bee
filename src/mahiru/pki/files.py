"""Saving and loading keys and certificates.

Private keys are created with mode 0600 from the first byte on (never world-readable, even
briefly) and certificates with 0644. Every write goes to a temporary file in the target
directory first and is then linked or renamed into place, so a crash never leaves a
half-written key, and an existing file is never replaced unless the caller asked for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs12

from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.pki.keys import (
    CertifiedKey,
    TlsPrivateKey,
    certificate_pem,
    check_key_matches,
    parse_certificate,
    parse_party_private_key,
    parse_party_public_key,
    parse_tls_private_key,
    private_key_pem,
    public_key_pem,
)

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def ensure_can_write(paths: Iterable[Path], *, overwrite: bool = False) -> None:
    """Raise Conflict naming every path that exists, unless `overwrite` is set.

    Call this before writing a set of files that belong together, so that a conflict on
    the last one does not leave the first ones written.
    """
    if overwrite:
        return
    existing = [str(path) for path in paths if os.path.lexists(path)]
    if existing:
        raise Conflict(
            f"refusing to overwrite existing file(s): {', '.join(existing)} "
            "(use --overwrite to replace them)",
            details={"paths": existing},
        )


def write_file(path: Path, data: bytes, *, mode: int, overwrite: bool = False) -> Path:
    """Write `data` to `path` with exactly `mode`, atomically; Conflict if it exists.

    With `overwrite`, an existing file is replaced (atomically, by rename).
    """
    path = Path(path)
    ensure_can_write([path], overwrite=overwrite)
    directory = path.parent
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileNotFoundError:
        raise NotFound(
            f"directory does not exist: {directory}", details={"path": str(directory)}
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            # The umask may have removed bits from `mode`; set it exactly.
            os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            # link() fails if the target appeared meanwhile, where rename would clobber it.
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise Conflict(
                    f"refusing to overwrite existing file: {path}", details={"paths": [str(path)]}
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return path


def save_private_key(
    path: Path, key: TlsPrivateKey | ed25519.Ed25519PrivateKey, *, overwrite: bool = False
) -> Path:
    """Write a private key as unencrypted PKCS#8 PEM with mode 0600."""
    return write_file(path, private_key_pem(key), mode=PRIVATE_FILE_MODE, overwrite=overwrite)


def save_certificate(path: Path, certificate: x509.Certificate, *, overwrite: bool = False) -> Path:
    """Write a certificate as PEM with mode 0644."""
    data = certificate_pem(certificate).encode("ascii")
    return write_file(path, data, mode=PUBLIC_FILE_MODE, overwrite=overwrite)


def save_public_key(
    path: Path,
    key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the PEM form of a party's Ed25519 public key with mode 0644."""
    data = public_key_pem(key).encode("ascii")
    return write_file(path, data, mode=PUBLIC_FILE_MODE, overwrite=overwrite)


def save_certified_key(
    certificate_path: Path, key_path: Path, certified: CertifiedKey, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write a certificate (0644) and its private key (0600); neither if either exists."""
    ensure_can_write([certificate_path, key_path], overwrite=overwrite)
    save_private_key(key_path, certified.private_key, overwrite=overwrite)
    save_certificate(certificate_path, certified.certificate, overwrite=overwrite)
    return Path(certificate_path), Path(key_path)


def save_pkcs12(
    path: Path,
    certified: CertifiedKey,
    *,
    name: str,
    password: str = "",
    overwrite: bool = False,
) -> Path:
    """Write a certificate and its key as one PKCS#12 file (mode 0600), for a web browser.

    Browsers import a user certificate this way. Without `password` the file
    is not encrypted: keep it as private as the key itself.
    """
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(
        name.encode(), certified.private_key, certified.certificate, None, encryption
    )
    return write_file(path, data, mode=PRIVATE_FILE_MODE, overwrite=overwrite)


def read_file(path: Path) -> bytes:
    """The bytes of a file; a missing file is NotFound, an unreadable one InvalidInput."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"file not found: {path}", details={"path": str(path)}) from None
    except OSError as error:
        raise InvalidInput(
            f"cannot read {path}: {error.strerror}", details={"path": str(path)}
        ) from None


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate from a PEM (or DER) file; a malformed file is InvalidInput naming it."""
    return parse_certificate(read_file(path), source=str(path))


def load_tls_private_key(path: Path) -> TlsPrivateKey:
    """An ECDSA private key from a PEM file; a malformed file is InvalidInput naming it."""
    return parse_tls_private_key(read_file(path), source=str(path))


def load_party_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """A party's Ed25519 main key from a PEM file; a malformed file is InvalidInput naming it."""
    return parse_party_private_key(read_file(path), source=str(path))


def load_party_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    """A party's Ed25519 public key from a PEM file; a malformed file is InvalidInput naming it."""
    return parse_party_public_key(read_file(path), source=str(path))


def load_certified_key(certificate_path: Path, key_path: Path) -> CertifiedKey:
    """A certificate and its private key from two files; InvalidInput if they do not match."""
    certified = CertifiedKey(
        certificate=load_certificate(certificate_path),
        private_key=load_tls_private_key(key_path),
    )
    return check_key_matches(certified, source=f"{certificate_path} and {key_path}")
