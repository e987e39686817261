"""The PKI: the tutorial's shape, and each variant with exactly the defect it names.

``openssl verify`` is the independent judge: each defective leaf must fail with the
error its name says, and pass once that one defect is taken out of the question (a
time inside its window, no purpose check, the missing CRL, the right host name).
"""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness import certs

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return certs.build(tmp_path_factory.mktemp("pki"))


def load(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def verify(pki: Path, root: str, chain: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """openssl verify of the chain's leaf, with the rest of the chain as untrusted."""
    chain_path = pki / chain
    certificates = load(chain_path)
    leaf = chain_path.with_suffix(".leaf.tmp")
    leaf.write_bytes(certs.pem(certificates[0]))
    argv = ["openssl", "verify", "-CAfile", str(pki / root), *extra]
    if len(certificates) > 1:
        rest = chain_path.with_suffix(".rest.tmp")
        rest.write_bytes(certs.pem(*certificates[1:]))
        argv += ["-untrusted", str(rest)]
    return subprocess.run([*argv, str(leaf)], capture_output=True, text=True, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and result.stdout.strip().endswith(": OK")


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The messages of every ``error N at D depth lookup: MESSAGE`` line, in order."""
    return [
        line.split(": ", 1)[1]
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith("error ") and " depth lookup: " in line
    ]


def error_code(result: subprocess.CompletedProcess[str]) -> int | None:
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("error ") and " at " in line:
            return int(line.split()[1])
    return None


SERVER_ROOT = "tls-certs/root-ca-cert.pem"
CLIENT_ROOT = "alternate-tls-certs/root-ca-cert.pem"


def test_tutorial_file_names(pki: Path) -> None:
    for name in (
        "root-ca-cert.pem",
        "intermediate-ca-cert.pem",
        "localhost-server-cert.pem",
        "localhost-server-key.pem",
        "localhost-server-chain.pem",
        "localhost-server-full.pem",
    ):
        assert (pki / "tls-certs" / name).is_file(), name
    for name in (
        "root-ca-cert.pem",
        "intermediate-ca-cert.pem",
        "localhost-client-cert.pem",
        "localhost-client-key.pem",
        "localhost-client-chain.pem",
    ):
        assert (pki / "alternate-tls-certs" / name).is_file(), name


def test_chain_shape_and_constraints(pki: Path) -> None:
    for folder, leaf_name in (("tls-certs", "localhost-server"), ("alternate-tls-certs", "localhost-client")):
        (root,) = load(pki / folder / "root-ca-cert.pem")
        (intermediate,) = load(pki / folder / "intermediate-ca-cert.pem")
        leaf, mid = load(pki / folder / f"{leaf_name}-chain.pem")
        assert root.subject == root.issuer
        assert intermediate.issuer == root.subject and leaf.issuer == intermediate.subject
        assert mid == intermediate
        assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        bc = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert bc.ca and bc.path_length == 0
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert load(pki / folder / f"{leaf_name}-full.pem") == [leaf, intermediate, root]


def test_server_and_client_leaf_names_and_ekus(pki: Path) -> None:
    server = load(pki / "tls-certs/localhost-server-chain.pem")[0]
    client = load(pki / "alternate-tls-certs/localhost-client-chain.pem")[0]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    csan = client.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert csan.get_values_for_type(x509.UniformResourceIdentifier) == ["identity://localhost.client"]
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_the_servers_cert_file_carries_its_intermediate(pki: Path) -> None:
    # The tutorial starts the server with localhost-server-cert.pem and its clients
    # trust only the root: that verifies only if the server sends the intermediate.
    assert load(pki / "tls-certs/localhost-server-cert.pem") == load(pki / "tls-certs/localhost-server-chain.pem")
    assert len(load(pki / "alternate-tls-certs/localhost-client-cert.pem")) == 1


def test_serials_are_unique(pki: Path) -> None:
    serials = [c.serial_number for p in pki.rglob("*.pem") if "BEGIN CERTIFICATE" in p.read_text() for c in load(p)]
    by_cert = {
        c.fingerprint(c.signature_hash_algorithm): c.serial_number
        for p in pki.rglob("*.pem")  # type: ignore[arg-type]
        if "BEGIN CERTIFICATE" in p.read_text()
        for c in load(p)
    }
    assert len(set(by_cert.values())) == len(by_cert)
    assert 0x1000 not in serials


def test_keys_are_private(pki: Path) -> None:
    keys = list(pki.rglob("*-key.pem"))
    assert len(keys) == len(certs.VARIANTS) + 2
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_each_leaf_verifies_with_its_own_pki_only(pki: Path) -> None:
    assert ok(verify(pki, SERVER_ROOT, "tls-certs/localhost-server-chain.pem", "-purpose", "sslserver"))
    assert ok(verify(pki, CLIENT_ROOT, "alternate-tls-certs/localhost-client-chain.pem", "-purpose", "sslclient"))
    assert error_code(verify(pki, CLIENT_ROOT, "tls-certs/localhost-server-chain.pem")) == 20
    assert error_code(verify(pki, SERVER_ROOT, "alternate-tls-certs/localhost-client-chain.pem")) == 20


def _attime(pki: Path, chain: str, offset_days: int) -> str:
    leaf = load(pki / chain)[0]
    middle = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
    return str(int((middle + dt.timedelta(days=offset_days)).timestamp()))


@pytest.mark.parametrize(
    ("variant", "root", "code"),
    [
        ("client-expired", CLIENT_ROOT, 10),
        ("client-not-yet-valid", CLIENT_ROOT, 9),
        ("server-expired", SERVER_ROOT, 10),
    ],
)
def test_time_variants_fail_now_and_pass_inside_their_window(pki: Path, variant: str, root: str, code: int) -> None:
    chain = f"variants/{variant}-chain.pem"
    assert error_code(verify(pki, root, chain)) == code
    assert ok(verify(pki, root, chain, "-attime", _attime(pki, chain, 0)))


@pytest.mark.parametrize(
    ("variant", "root", "purpose"),
    [("client-server-auth-eku", CLIENT_ROOT, "sslclient"), ("server-client-auth-eku", SERVER_ROOT, "sslserver")],
)
def test_eku_variants_fail_only_the_purpose_check(pki: Path, variant: str, root: str, purpose: str) -> None:
    chain = f"variants/{variant}-chain.pem"
    assert error_code(verify(pki, root, chain, "-purpose", purpose)) == 26
    assert ok(verify(pki, root, chain))


def test_self_signed_client_is_depth_zero_self_signed(pki: Path) -> None:
    assert error_code(verify(pki, CLIENT_ROOT, "variants/client-self-signed-chain.pem")) == 18
    (leaf,) = load(pki / "variants/client-self-signed-chain.pem")
    assert leaf.issuer == leaf.subject
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_non_ca_issuer_fails_as_invalid_ca_and_ends_without_cert_sign(pki: Path) -> None:
    leaf, issuer, _mid = load(pki / "variants/client-non-ca-issuer-chain.pem")
    assert leaf.issuer == issuer.subject
    assert not issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not issuer.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    # openssl verify reports "invalid CA certificate" first; the last error of the same
    # verify is the keyUsage one, which is what a report-mode server names (SPEC §7).
    seen = errors(verify(pki, CLIENT_ROOT, "variants/client-non-ca-issuer-chain.pem"))
    assert seen[0] == "invalid CA certificate"
    assert seen[-1] == "key usage does not include certificate signing"


def test_revoked_client_fails_only_with_the_crls(pki: Path) -> None:
    chain = "variants/client-revoked-chain.pem"
    crls = str(pki / "variants" / certs.CRL_FULL)
    assert ok(verify(pki, CLIENT_ROOT, chain))
    assert error_code(verify(pki, CLIENT_ROOT, chain, "-crl_check_all", "-CRLfile", crls)) == 23
    assert ok(
        verify(pki, CLIENT_ROOT, "alternate-tls-certs/localhost-client-chain.pem", "-crl_check_all", "-CRLfile", crls)
    )


def test_a_good_client_fails_crl_checking_with_only_its_issuers_crl(pki: Path) -> None:
    only_issuer = str(pki / "variants" / certs.CRL_ISSUER_ONLY)
    result = verify(
        pki, CLIENT_ROOT, "alternate-tls-certs/localhost-client-chain.pem", "-crl_check_all", "-CRLfile", only_issuer
    )
    assert error_code(result) == 3  # unable to get certificate CRL


def test_client_from_server_pki_is_trusted_by_the_server_root_only(pki: Path) -> None:
    chain = "variants/client-from-server-pki-chain.pem"
    assert ok(verify(pki, SERVER_ROOT, chain, "-purpose", "sslclient"))
    assert error_code(verify(pki, CLIENT_ROOT, chain)) == 20


def test_mismatched_key_is_not_the_certificates(pki: Path) -> None:
    leaf = load(pki / "variants/client-mismatched-key-chain.pem")[0]
    key = serialization.load_pem_private_key((pki / "variants/client-mismatched-key-key.pem").read_bytes(), None)
    own = load(pki / "alternate-tls-certs/localhost-client-chain.pem")[0]
    assert leaf == own
    assert key.public_key() != leaf.public_key()
    assert ok(verify(pki, CLIENT_ROOT, "variants/client-mismatched-key-chain.pem"))


def test_wrong_hostname_fails_only_the_name_check(pki: Path) -> None:
    chain = "variants/server-wrong-hostname-chain.pem"
    assert error_code(verify(pki, SERVER_ROOT, chain, "-verify_hostname", "localhost")) == 62
    assert ok(verify(pki, SERVER_ROOT, chain, "-purpose", "sslserver"))


def test_server_leaf_only_needs_its_intermediate(pki: Path) -> None:
    leaf = pki / "variants/server-leaf-only-chain.pem"
    assert len(load(leaf)) == 1
    assert error_code(verify(pki, SERVER_ROOT, "variants/server-leaf-only-chain.pem")) == 20


def test_rsa_keys_are_selectable(tmp_path: Path) -> None:
    out = certs.build(tmp_path, key_type="rsa")
    leaf = load(out / "tls-certs/localhost-server-chain.pem")[0]
    assert leaf.public_key().key_size == 2048  # type: ignore[union-attr]


def test_unknown_key_type_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(certs.UsageError, match="unknown key type 'dsa'"):
        certs.build(tmp_path, key_type="dsa")


def test_certs_never_follow_a_symlink_planted_where_a_file_goes(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("do not overwrite")
    out = tmp_path / "pki"
    (out / "tls-certs").mkdir(parents=True)
    (out / "tls-certs" / "root-ca-cert.pem").symlink_to(target)
    (out / "tls-certs" / "localhost-server-key.pem").symlink_to(target)
    certs.build(out)
    assert target.read_text() == "do not overwrite"
    for name in ("root-ca-cert.pem", "localhost-server-key.pem"):
        path = out / "tls-certs" / name
        assert not path.is_symlink() and b"-----BEGIN" in path.read_bytes()
    assert stat.S_IMODE((out / "tls-certs" / "localhost-server-key.pem").stat().st_mode) == 0o600


def test_role_views_hold_every_public_file_and_only_that_roles_keys(pki: Path, tmp_path: Path) -> None:
    server = certs.role_view(pki, tmp_path / "views" / "server", "server")
    client = certs.role_view(pki, tmp_path / "views" / "client", "client")
    public = {p.relative_to(pki) for p in pki.rglob("*") if p.is_file() and not p.name.endswith("-key.pem")}
    for view in (server, client):
        assert public <= {p.relative_to(view) for p in view.rglob("*") if p.is_file()}
    server_keys = {p.relative_to(server).as_posix() for p in server.rglob("*-key.pem")}
    client_keys = {p.relative_to(client).as_posix() for p in client.rglob("*-key.pem")}
    assert "tls-certs/localhost-server-key.pem" in server_keys and "variants/server-expired-key.pem" in server_keys
    assert "alternate-tls-certs/localhost-client-key.pem" in client_keys
    assert all(k.startswith(("tls-certs/", "variants/server-")) for k in server_keys)
    assert all(k.startswith(("alternate-tls-certs/", "variants/client-")) for k in client_keys)


# --- SPEC §7b: the production variants, each the good client leaf with one change ---


def _text(pki: Path, chain: str) -> str:
    """``openssl x509 -text`` of the chain's leaf."""
    leaf = pki / f"{chain}.leaf.tmp"
    leaf.write_bytes(certs.pem(load(pki / chain)[0]))
    return subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(leaf)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(
    ("variant", "public_key_line"),
    [
        ("client-rsa2048", "Public-Key: (2048 bit)"),
        ("client-p384", "NIST CURVE: P-384"),
        ("client-ed25519", "Public Key Algorithm: ED25519"),
        ("client-rsa1024", "Public-Key: (1024 bit)"),
    ],
)
def test_key_type_variants_differ_only_in_their_key(pki: Path, variant: str, public_key_line: str) -> None:
    chain = f"variants/{variant}-chain.pem"
    text = _text(pki, chain)
    assert public_key_line in text
    assert "TLS Web Client Authentication" in text and "Signature Algorithm: ecdsa-with-SHA256" in text
    assert load(pki / chain)[1] == load(pki / "alternate-tls-certs/intermediate-ca-cert.pem")[0]
    assert ok(verify(pki, CLIENT_ROOT, chain, "-purpose", "sslclient"))
    # The key and the certificate belong together.
    key = serialization.load_pem_private_key((pki / f"variants/{variant}-key.pem").read_bytes(), None)
    assert key.public_key() == load(pki / chain)[0].public_key()


def test_rsa1024_is_refused_only_by_a_security_level(pki: Path) -> None:
    # Debian's OpenSSL runs at security level 2 (112 bits): RSA-1024 gives 80.
    chain = "variants/client-rsa1024-chain.pem"
    assert errors(verify(pki, CLIENT_ROOT, chain, "-auth_level", "2")) == ["EE certificate key too weak"]
    assert ok(verify(pki, CLIENT_ROOT, chain, "-auth_level", "1"))
    assert ok(verify(pki, CLIENT_ROOT, "variants/client-rsa2048-chain.pem", "-auth_level", "2"))


@pytest.mark.parametrize("key_type", certs.KEY_TYPES)
def test_sha1_variant_is_signed_with_sha1_and_nothing_else_changed(tmp_path: Path, key_type: str) -> None:
    pki = certs.build(tmp_path, key_type)
    chain = "variants/client-sha1-signed-chain.pem"
    leaf = load(pki / chain)[0]
    assert isinstance(leaf.signature_hash_algorithm, type(certs.hashes.SHA1()))
    algorithm = "ecdsa-with-SHA1" if key_type == "ec" else "sha1WithRSAEncryption"
    assert _text(pki, chain).count(f"Signature Algorithm: {algorithm}") == 2  # inside the TBS and outside
    assert ok(verify(pki, CLIENT_ROOT, chain, "-purpose", "sslclient"))  # the signature is good
    assert errors(verify(pki, CLIENT_ROOT, chain, "-auth_level", "1")) == ["CA signature digest algorithm too weak"]


def test_no_eku_variant_has_no_eku_and_verifies_for_client_auth(pki: Path) -> None:
    chain = "variants/client-no-eku-chain.pem"
    leaf = load(pki / chain)[0]
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert "Extended Key Usage" not in _text(pki, chain)
    assert ok(verify(pki, CLIENT_ROOT, chain, "-purpose", "sslclient"))


def test_expired_intermediate_variant_fails_only_for_its_intermediate(pki: Path) -> None:
    chain = "variants/client-expired-intermediate-chain.pem"
    leaf, intermediate = load(pki / chain)
    assert leaf.issuer == intermediate.subject != load(pki / "alternate-tls-certs/intermediate-ca-cert.pem")[0].subject
    now = dt.datetime.now(dt.UTC)
    assert intermediate.not_valid_after_utc < now < leaf.not_valid_after_utc
    assert leaf.not_valid_before_utc < now
    result = verify(pki, CLIENT_ROOT, chain, "-purpose", "sslclient")
    assert "error 10 at 1 depth lookup: certificate has expired" in result.stdout + result.stderr
    assert errors(result) == ["certificate has expired"]
    assert ok(verify(pki, CLIENT_ROOT, chain, "-no_check_time", "-purpose", "sslclient"))  # time is all


def test_unknown_critical_extension_variant(pki: Path) -> None:
    chain = "variants/client-unknown-critical-ext-chain.pem"
    leaf = load(pki / chain)[0]
    extension = leaf.extensions.get_extension_for_oid(certs.UNKNOWN_CRITICAL_OID)
    assert extension.critical
    assert "1.3.6.1.4.1.32473.1.1: critical" in _text(pki, chain)
    assert errors(verify(pki, CLIENT_ROOT, chain)) == ["unhandled critical extension"]
    assert ok(verify(pki, CLIENT_ROOT, chain, "-ignore_critical", "-purpose", "sslclient"))


def test_unrelated_ca_is_of_no_pki_in_play(pki: Path) -> None:
    (unrelated,) = load(pki / "variants" / certs.UNRELATED_CA)
    assert unrelated.subject == unrelated.issuer
    roots = [load(pki / f"{folder}/root-ca-cert.pem")[0].subject for folder in ("tls-certs", "alternate-tls-certs")]
    assert unrelated.subject not in roots
    assert not ok(verify(pki, f"variants/{certs.UNRELATED_CA}", "alternate-tls-certs/localhost-client-chain.pem"))
    assert not list((pki / "variants").glob("unrelated*key*"))


def test_huge_ca_list_passes_64_kib_of_names_and_still_trusts_the_client(pki: Path) -> None:
    bundle = load(pki / "variants" / certs.HUGE_CA_LIST)
    assert len(bundle) == certs.HUGE_CA_COUNT + 1
    assert bundle[-1] == load(pki / CLIENT_ROOT)[0]
    # Each name as the CertificateRequest carries it: a two-byte length, then the DER.
    assert sum(2 + len(c.subject.public_bytes()) for c in bundle) > 65535
    assert len({c.subject for c in bundle}) == len(bundle)
    chain = "alternate-tls-certs/localhost-client-chain.pem"
    assert ok(verify(pki, f"variants/{certs.HUGE_CA_LIST}", chain, "-purpose", "sslclient"))
