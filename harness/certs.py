"""The two PKIs of the tutorial and the defective variants the trust scenarios need.

Everything is generated per run with ``cryptography``; private keys are written with
mode 0600 and never leave the output folder. Two independent PKIs, as in the
tutorial's appendix, so that a client is never trusted by accident through a shared CA:

* ``tls-certs/`` -- the server PKI (root -> intermediate, pathlen 0 -> server leaf).
* ``alternate-tls-certs/`` -- the client PKI (same shape, plus the client leaf).

``variants/`` holds one certificate (chain) and key per defect, each named after what
it is and carrying exactly that one defect (see ``VARIANTS``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from harness.errors import UsageError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

#: The client-key variants of SPEC §7b: name -> key type (``new_key``).
CLIENT_KEY_VARIANTS = {
    "client-rsa2048": "rsa",
    "client-p384": "p384",
    "client-ed25519": "ed25519",
    "client-rsa1024": "rsa1024",
}

#: An extension no stack knows: under the project's own arc in the "example" space of
#: private enterprise numbers (RFC 5612's 32473), marked critical.
UNKNOWN_CRITICAL_OID = ObjectIdentifier("1.3.6.1.4.1.32473.1.1")

KEY_TYPES = ("ec", "rsa")
SERVER_PKI = "tls-certs"
CLIENT_PKI = "alternate-tls-certs"
VARIANTS_DIR = "variants"

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

# Validity windows, relative to "now". A valid certificate is valid from an hour ago so
# that a container clock a little behind the host's still accepts it.
_VALID = (dt.timedelta(hours=-1), dt.timedelta(days=30))
_EXPIRED = (dt.timedelta(days=-60), dt.timedelta(days=-30))
_NOT_YET_VALID = (dt.timedelta(days=30), dt.timedelta(days=60))
_CA_VALID = (dt.timedelta(days=-400), dt.timedelta(days=400))

#: Variant name -> the one defect it carries. ``mtls-harness certs`` writes
#: ``variants/<name>-chain.pem`` (leaf first) and ``variants/<name>-key.pem`` for each.
VARIANTS: dict[str, str] = {
    "client-expired": "client leaf whose notAfter is in the past",
    "client-not-yet-valid": "client leaf whose notBefore is in the future",
    "client-server-auth-eku": "client leaf whose EKU is serverAuth only",
    "client-self-signed": "self-signed client leaf (CA:FALSE, no issuer chain)",
    "client-non-ca-issuer": "client leaf signed by a CA:FALSE certificate",
    "client-revoked": "client leaf listed in its issuing CA's CRL",
    "client-from-server-pki": "client leaf issued by the server's PKI",
    "client-mismatched-key": "client chain paired with a key that is not its own",
    "client-rsa2048": "client leaf with an RSA-2048 key",
    "client-p384": "client leaf with an EC P-384 key",
    "client-ed25519": "client leaf with an Ed25519 key",
    "client-rsa1024": "client leaf with an RSA-1024 key",
    "client-sha1-signed": "client leaf whose issuer signed it with SHA-1",
    "client-no-eku": "client leaf without an extendedKeyUsage extension",
    "client-expired-intermediate": "valid client leaf whose intermediate CA has expired",
    "client-unknown-critical-ext": "client leaf with an unknown extension marked critical",
    "server-wrong-hostname": "server leaf for another host name",
    "server-expired": "server leaf whose notAfter is in the past",
    "server-client-auth-eku": "server leaf whose EKU is clientAuth only",
    "server-leaf-only": "server leaf without its intermediate",
}

#: CA files (certificates only, no key) written next to the variants.
UNRELATED_CA = "unrelated-ca-cert.pem"
HUGE_CA_LIST = "huge-ca-list.pem"
#: How many extra CAs ``HUGE_CA_LIST`` holds before the client root: their names alone
#: pass 64 KiB, the most a CertificateRequest's certificate_authorities can encode.
HUGE_CA_COUNT = 600

#: CRL files written next to the variants.
CRL_FULL = "alternate-crls.pem"
CRL_ISSUER_ONLY = "alternate-intermediate-crl.pem"


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey


def new_key(key_type: str = "ec") -> PrivateKey:
    """A fresh private key: EC P-256 by default, RSA-2048 when asked (``KEY_TYPES``); the
    client-key variants also use ``p384``, ``ed25519`` and ``rsa1024``."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    raise UsageError(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _window(now: dt.datetime, window: tuple[dt.timedelta, dt.timedelta]) -> tuple[dt.datetime, dt.datetime]:
    return now + window[0], now + window[1]


def _builder(
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: PublicKey,
    validity: tuple[dt.datetime, dt.datetime],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool, digital_signature: bool, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_root(org: str, now: dt.datetime, key_type: str = "ec") -> Issued:
    """A self-signed root CA without a path length limit."""
    key = new_key(key_type)
    name = _name(f"{org} Root CA", org)
    cert = (
        _builder(name, name, key.public_key(), _window(now, _CA_VALID))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(cert_sign=True, digital_signature=False, key_encipherment=False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_intermediate(
    root: Issued,
    org: str,
    now: dt.datetime,
    key_type: str = "ec",
    *,
    common_name: str | None = None,
    validity: tuple[dt.timedelta, dt.timedelta] = _CA_VALID,
) -> Issued:
    """An intermediate CA with pathlen 0: it may sign leaves, not further CAs."""
    key = new_key(key_type)
    cert = (
        _builder(
            _name(common_name or f"{org} Intermediate CA", org),
            root.cert.subject,
            key.public_key(),
            _window(now, validity),
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(cert_sign=True, digital_signature=False, key_encipherment=False),
            critical=True,
        )
        .add_extension(_aki(root), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return Issued(cert, key)


def _aki(issuer: Issued) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key())  # type: ignore[arg-type]


def make_leaf(
    issuer: Issued | None,
    common_name: str,
    org: str,
    now: dt.datetime,
    *,
    eku: Sequence[x509.ObjectIdentifier] | None,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    uris: Sequence[str] = (),
    validity: tuple[dt.timedelta, dt.timedelta] = _VALID,
    key_usage: bool = True,
    key_type: str = "ec",
    unknown_critical: bool = False,
) -> Issued:
    """An end-entity certificate (CA:FALSE). ``issuer=None`` makes it self-signed;
    ``eku=None`` leaves the extendedKeyUsage extension out; ``unknown_critical`` adds
    ``UNKNOWN_CRITICAL_OID``, marked critical."""
    key = new_key(key_type)
    subject = _name(common_name, org)
    issuer_name = issuer.cert.subject if issuer else subject
    builder = _builder(subject, issuer_name, key.public_key(), _window(now, validity)).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if unknown_critical:
        builder = builder.add_extension(x509.UnrecognizedExtension(UNKNOWN_CRITICAL_OID, b"\x05\x00"), critical=True)
    if key_usage:
        builder = builder.add_extension(
            _key_usage(
                cert_sign=False,
                digital_signature=True,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
            ),
            critical=True,
        )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if issuer is not None:
        builder = builder.add_extension(_aki(issuer), critical=False)
    signer = issuer.key if issuer else key
    # Ed25519 signs without a separate digest (RFC 8410).
    cert = builder.sign(signer, None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    return Issued(cert, key)


# --- SHA-1 signatures ------------------------------------------------------------------
# ``cryptography`` no longer signs certificates with SHA-1, so the SHA-1 variant is the
# SHA-256 certificate re-signed: the signature algorithm is swapped in the TBS (it is
# signed) and outside it, and the issuer signs the new TBS with SHA-1.

_SHA256_TO_SHA1 = {
    # ecdsa-with-SHA256 -> ecdsa-with-SHA1 (RFC 5758 / RFC 3279: no parameters)
    bytes.fromhex("300a06082a8648ce3d040302"): bytes.fromhex("300906072a8648ce3d0401"),
    # sha256WithRSAEncryption -> sha1WithRSAEncryption (NULL parameters)
    bytes.fromhex("300d06092a864886f70d01010b0500"): bytes.fromhex("300d06092a864886f70d0101050500"),
}


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_sequence(content: bytes) -> bytes:
    return b"\x30" + _der_length(len(content)) + content


def _der_content(tlv: bytes) -> bytes:
    """The content of one DER TLV (tag of one byte)."""
    first = tlv[1]
    if first < 0x80:
        return tlv[2 : 2 + first]
    size = first & 0x7F
    length = int.from_bytes(tlv[2 : 2 + size], "big")
    return tlv[2 + size : 2 + size + length]


def sha1_signed(cert: x509.Certificate, issuer_key: PrivateKey) -> x509.Certificate:
    """``cert`` signed again by ``issuer_key`` with SHA-1 (ECDSA or RSA PKCS#1 v1.5)."""
    tbs = cert.tbs_certificate_bytes
    for old, new in _SHA256_TO_SHA1.items():
        if old in tbs:
            algorithm = new
            tbs = _der_sequence(_der_content(tbs).replace(old, new, 1))
            break
    else:
        raise ValueError("only an ECDSA or RSA SHA-256 signature can be re-signed with SHA-1")
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA1()))  # noqa: S303 - the defect under test
    elif isinstance(issuer_key, rsa.RSAPrivateKey):
        signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    else:
        raise ValueError("an Ed25519 issuer has no SHA-1 signature")
    bit_string = b"\x03" + _der_length(len(signature) + 1) + b"\x00" + signature
    return x509.load_der_x509_certificate(_der_sequence(tbs + algorithm + bit_string))


def huge_ca_list(now: dt.datetime, count: int = HUGE_CA_COUNT) -> list[bytes]:
    """``count`` self-signed CA certificates (PEM) with long names, none related to any
    PKI in play. One EC key signs them all: only their names matter, and one key keeps
    the generation to a fraction of a second."""
    key = ec.generate_private_key(ec.SECP256R1())
    org = "mtls-harness Huge CA List"
    unit = "Extra certificate authority for the 64 KiB CertificateRequest scenario"
    certificates = []
    for n in range(count):
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                x509.NameAttribute(NameOID.COMMON_NAME, f"mtls-harness Extra CA {n + 1:04d}"),
            ]
        )
        cert = (
            _builder(name, name, key.public_key(), _window(now, _CA_VALID))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        certificates.append(pem(cert))
    return certificates


def make_crl(issuer: Issued, revoked_serials: Sequence[int], now: dt.datetime) -> x509.CertificateRevocationList:
    """A CRL from ``issuer`` valid for the next 30 days, listing ``revoked_serials``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=30))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(minutes=30))
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    """PEM text of ``certs`` in order (leaf first for a chain)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` as a new file: whatever stood there (a file, a symlink) is removed
    first and the file is created with O_EXCL | O_NOFOLLOW, so a link planted where a
    certificate goes is never followed and its target never overwritten."""
    if path.is_symlink() or path.exists():
        if path.is_dir() and not path.is_symlink():
            raise UsageError(f"{path} is a folder where a certificate file goes")
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode, follow_symlinks=False)


def write_public(path: Path, data: bytes) -> None:
    _write_new(path, data, 0o644)


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (0600), whatever the umask."""
    _write_new(path, data, 0o600)


#: Where each role's private keys are (relative to the certificates folder, SPEC §5).
KEY_OWNERS = (
    (f"{SERVER_PKI}/", "server"),
    (f"{VARIANTS_DIR}/server-", "server"),
    (f"{CLIENT_PKI}/", "client"),
    (f"{VARIANTS_DIR}/client-", "client"),
)


def key_role(relative: str) -> str | None:
    """``server`` or ``client`` for a private key file, by where it is; None for a public file.

    A key of no known owner is "unknown" and goes into no container."""
    if not relative.endswith("-key.pem"):
        return None
    for prefix, role in KEY_OWNERS:
        if relative.startswith(prefix):
            return role
    return "unknown"


def role_view(certs_dir: Path, view: Path, role: str) -> Path:
    """``view``: every public file of ``certs_dir`` plus the private keys of ``role`` only,
    hard-linked (same paths, same modes), for mounting at /certs in that role's containers
    (SPEC §12: a container sees only the keys its role needs)."""
    if view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    for path in sorted(certs_dir.rglob("*")):
        if path == view.parent or view.parent in path.parents:
            continue  # the views themselves, when they live inside certs_dir
        relative = path.relative_to(certs_dir)
        target = view / relative
        if path.is_dir() and not path.is_symlink():
            target.mkdir(exist_ok=True)
            continue
        if path.is_symlink() or not path.is_file():
            continue
        owner = key_role(relative.as_posix())
        if owner is None or owner == role:
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    return view


@dataclass(frozen=True)
class Pki:
    """One root -> intermediate PKI."""

    root: Issued
    intermediate: Issued


def _write_pki_dir(folder: Path, pki: Pki, leaves: dict[str, Issued]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_public(folder / "root-ca-cert.pem", pem(pki.root.cert))
    write_public(folder / "intermediate-ca-cert.pem", pem(pki.intermediate.cert))
    for stem, leaf in leaves.items():
        write_public(folder / f"{stem}-cert.pem", pem(leaf.cert))
        write_public(folder / f"{stem}-chain.pem", pem(leaf.cert, pki.intermediate.cert))
        write_public(
            folder / f"{stem}-full.pem",
            pem(leaf.cert, pki.intermediate.cert, pki.root.cert),
        )
        write_private(folder / f"{stem}-key.pem", key_pem(leaf.key))


def _write_variant(folder: Path, name: str, chain: Sequence[x509.Certificate], key: PrivateKey) -> None:
    write_public(folder / f"{name}-chain.pem", pem(*chain))
    write_private(folder / f"{name}-key.pem", key_pem(key))


def build(out: Path, key_type: str = "ec", now: dt.datetime | None = None) -> Path:
    """Write both PKIs and every variant under ``out``; return ``out``.

    The server's ``localhost-server-cert.pem`` carries the leaf *and* the intermediate:
    the tutorial starts the server with that file while its clients trust only the
    root, which verifies only when the server sends the intermediate. The leaf alone
    is ``variants/server-leaf-only-chain.pem``.
    """
    if key_type not in KEY_TYPES:
        raise UsageError(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    out.mkdir(parents=True, exist_ok=True)

    server_root = make_root("mtls-harness Server PKI", now, key_type)
    server = Pki(server_root, make_intermediate(server_root, "mtls-harness Server PKI", now, key_type))
    client_root = make_root("mtls-harness Client PKI", now, key_type)
    client = Pki(client_root, make_intermediate(client_root, "mtls-harness Client PKI", now, key_type))

    def server_leaf(**kw: object) -> Issued:
        kw.setdefault("eku", [SERVER_AUTH])
        kw.setdefault("dns", ["localhost"])
        kw.setdefault("ips", ["127.0.0.1"])
        return make_leaf(server.intermediate, "localhost", "mtls-harness Server PKI", now, key_type=key_type, **kw)  # type: ignore[arg-type]

    def client_leaf(
        issuer: Issued | None = client.intermediate, org: str = "mtls-harness Client PKI", **kw: object
    ) -> Issued:
        kw.setdefault("eku", [CLIENT_AUTH])
        kw.setdefault("uris", ["identity://localhost.client"])
        return make_leaf(issuer, "localhost.client", org, now, key_type=key_type, **kw)  # type: ignore[arg-type]

    server_ok = server_leaf()
    client_ok = client_leaf()
    _write_pki_dir(out / SERVER_PKI, server, {"localhost-server": server_ok})
    # The tutorial starts the server with localhost-server-cert.pem; see the docstring.
    write_public(out / SERVER_PKI / "localhost-server-cert.pem", pem(server_ok.cert, server.intermediate.cert))
    _write_pki_dir(out / CLIENT_PKI, client, {"localhost-client": client_ok})

    variants = out / VARIANTS_DIR
    variants.mkdir(parents=True, exist_ok=True)
    mid = client.intermediate.cert

    expired = client_leaf(validity=_EXPIRED)
    _write_variant(variants, "client-expired", [expired.cert, mid], expired.key)
    future = client_leaf(validity=_NOT_YET_VALID)
    _write_variant(variants, "client-not-yet-valid", [future.cert, mid], future.key)
    wrong_eku = client_leaf(eku=[SERVER_AUTH])
    _write_variant(variants, "client-server-auth-eku", [wrong_eku.cert, mid], wrong_eku.key)
    # No keyUsage: OpenSSL treats a self-issued certificate as self-signed only when
    # its keyUsage is absent or allows keyCertSign.
    self_signed = client_leaf(issuer=None, key_usage=False)
    _write_variant(variants, "client-self-signed", [self_signed.cert], self_signed.key)
    # The CA:FALSE issuer is an ordinary end-entity certificate of the client PKI.
    not_a_ca = make_leaf(
        client.intermediate, "not-a-ca", "mtls-harness Client PKI", now, eku=[CLIENT_AUTH], key_type=key_type
    )
    signed_by_leaf = client_leaf(issuer=not_a_ca)
    _write_variant(variants, "client-non-ca-issuer", [signed_by_leaf.cert, not_a_ca.cert, mid], signed_by_leaf.key)
    revoked = client_leaf()
    _write_variant(variants, "client-revoked", [revoked.cert, mid], revoked.key)
    accidental = client_leaf(issuer=server.intermediate, org="mtls-harness Server PKI")
    _write_variant(variants, "client-from-server-pki", [accidental.cert, server.intermediate.cert], accidental.key)
    _write_variant(variants, "client-mismatched-key", [client_ok.cert, mid], new_key(key_type))
    # SPEC §7b: the same good client leaf, each time with one thing changed.
    for name, leaf_key_type in CLIENT_KEY_VARIANTS.items():
        typed = make_leaf(
            client.intermediate,
            "localhost.client",
            "mtls-harness Client PKI",
            now,
            eku=[CLIENT_AUTH],
            uris=["identity://localhost.client"],
            key_type=leaf_key_type,
        )
        _write_variant(variants, name, [typed.cert, mid], typed.key)
    sha1 = client_leaf()
    sha1 = Issued(sha1_signed(sha1.cert, client.intermediate.key), sha1.key)
    _write_variant(variants, "client-sha1-signed", [sha1.cert, mid], sha1.key)
    no_eku = client_leaf(eku=None)
    _write_variant(variants, "client-no-eku", [no_eku.cert, mid], no_eku.key)
    # A second intermediate of the client root, expired, with its own name so that no
    # stack can build the path through the good one.
    old_mid = make_intermediate(
        client.root,
        "mtls-harness Client PKI",
        now,
        key_type,
        common_name="mtls-harness Client PKI Expired Intermediate CA",
        validity=_EXPIRED,
    )
    under_old = client_leaf(issuer=old_mid)
    _write_variant(variants, "client-expired-intermediate", [under_old.cert, old_mid.cert], under_old.key)
    critical = client_leaf(unknown_critical=True)
    _write_variant(variants, "client-unknown-critical-ext", [critical.cert, mid], critical.key)

    smid = server.intermediate.cert
    wrong_host = server_leaf(dns=["wrong-host.invalid"], ips=["192.0.2.1"])
    _write_variant(variants, "server-wrong-hostname", [wrong_host.cert, smid], wrong_host.key)
    server_expired = server_leaf(validity=_EXPIRED)
    _write_variant(variants, "server-expired", [server_expired.cert, smid], server_expired.key)
    server_wrong_eku = server_leaf(eku=[CLIENT_AUTH])
    _write_variant(variants, "server-client-auth-eku", [server_wrong_eku.cert, smid], server_wrong_eku.key)
    _write_variant(variants, "server-leaf-only", [server_ok.cert], server_ok.key)

    # A root of no PKI in play, for a CertificateRequest naming a CA the client never
    # heard of (--ca-names); its key is thrown away.
    unrelated = make_root("mtls-harness Unrelated PKI", now, key_type)
    write_public(variants / UNRELATED_CA, pem(unrelated.cert))
    write_public(variants / HUGE_CA_LIST, b"".join(huge_ca_list(now)) + pem(client.root.cert))

    intermediate_crl = make_crl(client.intermediate, [revoked.cert.serial_number], now)
    root_crl = make_crl(client.root, [], now)
    crl_pem = [c.public_bytes(serialization.Encoding.PEM) for c in (intermediate_crl, root_crl)]
    write_public(variants / CRL_FULL, b"".join(crl_pem))
    write_public(variants / CRL_ISSUER_ONLY, crl_pem[0])
    return out
