"""The trust-scenario catalogue (SPEC §7) as data.

Each scenario says what the server is given (certificate, trust, mode, CRLs), what the
client is given (certificate, key, trust), which TLS versions it runs under, and the
expected verdict as a stack-neutral class (SPEC §8). ``native`` pins the words a stack
family must use for it: the OpenSSL names of SPEC §7, which the OpenSSL-based servers
(manifest ``native_names = "openssl"``) must report, so the tutorial's strings stay
asserted. Where one stack legitimately differs, its own manifest says so with the rule
from its source (harness.registry); this catalogue names no implementation.
Expectations come from the spec or from a rule, never from an observed run.

Paths are relative to the certificates folder that ``mtls-harness certs`` writes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from harness.certs import HUGE_CA_COUNT
from harness.errors import UsageError

TLS_VERSIONS = ("1.2", "1.3")

# --- material (see harness.certs) -----------------------------------------------------
SERVER_ROOT = "tls-certs/root-ca-cert.pem"
SERVER_CERT = "tls-certs/localhost-server-cert.pem"
SERVER_KEY = "tls-certs/localhost-server-key.pem"
CLIENT_ROOT = "alternate-tls-certs/root-ca-cert.pem"
CLIENT_INTERMEDIATE = "alternate-tls-certs/intermediate-ca-cert.pem"
CLIENT_CHAIN = "alternate-tls-certs/localhost-client-chain.pem"
CLIENT_LEAF = "alternate-tls-certs/localhost-client-cert.pem"
CLIENT_KEY = "alternate-tls-certs/localhost-client-key.pem"
CRLS = "variants/alternate-crls.pem"
ISSUER_CRL_ONLY = "variants/alternate-intermediate-crl.pem"
UNRELATED_CA = "variants/unrelated-ca-cert.pem"
HUGE_CA_LIST = "variants/huge-ca-list.pem"
#: ``ServerSide.ca_names`` for a CertificateRequest that lists no names at all.
NO_CA_NAMES = "none"
#: The path that asks for the client certificate in per-path-client-auth.
SECURE_PATH = "/secure"


def variant_chain(name: str) -> str:
    return f"variants/{name}-chain.pem"


def variant_key(name: str) -> str:
    return f"variants/{name}-key.pem"


@dataclass(frozen=True)
class ServerSide:
    """What the server is started with."""

    cert: str = SERVER_CERT
    key: str = SERVER_KEY
    root_ca: str | None = None
    require: bool = False
    crl: str | None = None
    #: The names the CertificateRequest lists, apart from what the server trusts
    #: (``--ca-names``): a CA file, ``NO_CA_NAMES``, or None for the stack's default.
    ca_names: str | None = None
    #: Ask for the client certificate only on a request for this path (``--auth-path``):
    #: renegotiation in TLS 1.2, post-handshake authentication in TLS 1.3.
    auth_path: str | None = None


@dataclass(frozen=True)
class ClientSide:
    """What the client presents and trusts."""

    cert: str | None = None
    key: str | None = None
    root_ca: str | None = SERVER_ROOT
    #: The path the client requests (None: the server's URL as it is).
    path: str | None = None


#: The alternate (client) root's name as a CertificateRequest lists it (harness.certs).
CLIENT_ROOT_DN = "CN=mtls-harness Client PKI Root CA"
#: The unrelated CA's name (harness.certs, UNRELATED_CA).
UNRELATED_CA_DN = "CN=mtls-harness Unrelated PKI Root CA"


@dataclass(frozen=True)
class Wire:
    """What a capture of the cell must show (SPEC §9); None means "not asserted".

    A server's alert is asserted for every ``server-rejected`` expectation without
    being listed here: the named alert, or no alert at all for ``closed``.
    """

    client_certificate_count: int | None = None
    certificate_verify: bool | None = None
    ca_names: tuple[str, ...] = ()
    #: How many names the CertificateRequest lists (0: an empty list or no extension).
    ca_names_count: int | None = None
    #: The server asks for the certificate only after the handshake (--auth-path).
    certificate_request_after_handshake: bool | None = None
    #: The least size of a CertificateRequest a client could not read (its expectation
    #: says ``client-error:decode-error`` or ``message-too-large``): the list the server sent.
    unreadable_request_bytes: int | None = None


@dataclass(frozen=True)
class ByTls:
    """A default that differs for one TLS version because the protocol differs, with why."""

    tls: str
    verdict: str
    reason: str


@dataclass(frozen=True)
class Scenario:
    id: str
    summary: str
    server: ServerSide
    client: ClientSide
    expected: str
    native: Mapping[str, str] = field(default_factory=dict)
    by_tls: tuple[ByTls, ...] = ()
    tls: tuple[str, ...] = TLS_VERSIONS
    tutorial: bool = False
    wire: Wire = Wire()
    #: Requests made first, in order, by the same client stack against the same server
    #: process; only the last request (``client``) is judged. Their outputs are kept.
    before: tuple[ClientSide, ...] = ()
    #: The scenario whose stack expectations apply to the judged request, where this
    #: scenario's own do not say otherwise (its last request is that scenario's).
    like: str | None = None
    #: What the client stack must be able to do for the scenario to mean anything
    #: (registry FEATURES): a client that declares it unsupported makes the cell unsupported.
    client_needs: tuple[str, ...] = ()

    @property
    def fresh_server(self) -> bool:
        """A scenario of several requests gets a server process of its own: what the
        server keeps between connections must come from this cell's requests only."""
        return bool(self.before)

    @property
    def why(self) -> str:
        """Why the default verdict is the default (harness/defaults.toml)."""
        return defaults()[self.id][0]

    @property
    def source(self) -> str:
        """Where that rule is written: OpenSSL 3.0's source at its Debian tag, an RFC, a manual page."""
        return defaults()[self.id][1]

    def default(self, tls: str) -> tuple[str, str]:
        """(the catalogue's verdict for ``tls``, the reason when the TLS version changes it, or "")."""
        for case in self.by_tls:
            if case.tls == tls:
                return case.verdict, case.reason
        return self.expected, ""


def _presenting(name: str) -> ClientSide:
    """A client presenting the variant chain ``name`` (harness.certs) with its key."""
    return ClientSide(cert=variant_chain(name), key=variant_key(name))


TRUSTED_CLIENT = ClientSide(cert=CLIENT_CHAIN, key=CLIENT_KEY)
TRUSTING_SERVER = ServerSide(root_ca=CLIENT_ROOT)
CRL_SERVER = ServerSide(root_ca=CLIENT_ROOT, crl=CRLS)

NO_CERT_ALERT_12 = ByTls(
    "1.2",
    "server-rejected:handshake_failure",
    "TLS 1.2 has no certificate_required alert (RFC 8446 §6.2 adds it); RFC 5246 §7.4.6 says a server "
    "that requires a certificate answers an empty one with a fatal handshake_failure",
)


def _openssl(name: str) -> dict[str, str]:
    """The X509_V_ERR name an OpenSSL-based server reports (SPEC §7's tables)."""
    return {"openssl": name}


def _require(bad: str, summary: str, server: ServerSide, client: ClientSide, alert: str) -> Scenario:
    """A bad case of report mode run with ``--require``: the alert OpenSSL sends (SPEC §7)."""
    return Scenario(
        f"require-{bad}",
        summary + " (--require)",
        ServerSide(server.cert, server.key, server.root_ca, True, server.crl, server.ca_names, server.auth_path),
        client,
        f"server-rejected:{alert}",
    )


CATALOGUE: tuple[Scenario, ...] = (
    # --- the server's trust in the client (report mode) ---
    Scenario(
        "no-client-cert",
        "server without --root-ca; client sends no certificate (tutorial)",
        ServerSide(),
        ClientSide(),
        "reported:no-cert",
        _openssl("UNABLE_TO_GET_ISSUER_CERT"),
        tutorial=True,
        # The tutorial's Wireshark screenshot: a Certificate message with 0 certificates.
        wire=Wire(client_certificate_count=0, certificate_verify=False),
    ),
    Scenario(
        "untrusted-client-ca",
        "server without --root-ca; client sends the alternate chain (tutorial)",
        ServerSide(),
        TRUSTED_CLIENT,
        "reported:untrusted",
        _openssl("UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
        tutorial=True,
    ),
    Scenario(
        "trusted-client",
        "server trusts the alternate root; client sends its chain (tutorial)",
        TRUSTING_SERVER,
        TRUSTED_CLIENT,
        "ok",
        tutorial=True,
        wire=Wire(client_certificate_count=2, certificate_verify=True),
    ),
    Scenario(
        "trusted-ca-no-client-cert",
        "server trusts the alternate root; client sends nothing (tutorial)",
        TRUSTING_SERVER,
        ClientSide(),
        "reported:no-cert",
        _openssl("UNABLE_TO_GET_ISSUER_CERT"),
        tutorial=True,
        # Node names its ``ca`` in the CertificateRequest; the Python server does the
        # same on purpose (images/python/server_mtls.py, add_client_ca).
        wire=Wire(client_certificate_count=0, certificate_verify=False, ca_names=(CLIENT_ROOT_DN,)),
    ),
    Scenario(
        "leaf-without-intermediate",
        "client sends its leaf without the intermediate",
        TRUSTING_SERVER,
        ClientSide(cert=CLIENT_LEAF, key=CLIENT_KEY),
        "reported:untrusted",
        _openssl("UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
    ),
    Scenario(
        "intermediate-only-anchor",
        "server trusts the client's intermediate only (no partial-chain)",
        ServerSide(root_ca=CLIENT_INTERMEDIATE),
        TRUSTED_CLIENT,
        "reported:untrusted",
        _openssl("UNABLE_TO_GET_ISSUER_CERT"),
    ),
    Scenario(
        "expired-client-cert",
        "client leaf expired",
        TRUSTING_SERVER,
        _presenting("client-expired"),
        "reported:expired",
        _openssl("CERT_HAS_EXPIRED"),
    ),
    Scenario(
        "not-yet-valid-client-cert",
        "client leaf not yet valid",
        TRUSTING_SERVER,
        _presenting("client-not-yet-valid"),
        "reported:not-yet-valid",
        _openssl("CERT_NOT_YET_VALID"),
    ),
    Scenario(
        "server-auth-eku",
        "client leaf with EKU serverAuth only",
        TRUSTING_SERVER,
        _presenting("client-server-auth-eku"),
        "reported:purpose",
        _openssl("INVALID_PURPOSE"),
    ),
    Scenario(
        "self-signed-client-cert",
        "client sends a self-signed leaf",
        TRUSTING_SERVER,
        _presenting("client-self-signed"),
        "reported:untrusted",
        _openssl("DEPTH_ZERO_SELF_SIGNED_CERT"),
    ),
    Scenario(
        "non-ca-issuer",
        "client leaf signed by a CA:FALSE certificate whose keyUsage lacks keyCertSign",
        TRUSTING_SERVER,
        _presenting("client-non-ca-issuer"),
        # OpenSSL 3.0 reports INVALID_CA, INVALID_PURPOSE and PATH_LENGTH_EXCEEDED from
        # check_chain_extensions, then KEYUSAGE_NO_CERTSIGN from internal_verify; a
        # server that reports SSL_get_verify_result reports the last of them.
        "reported:invalid-ca",
        _openssl("KEYUSAGE_NO_CERTSIGN"),
    ),
    Scenario(
        "crl-good-client",
        "server has CRLs for every CA of the client chain; client not revoked",
        CRL_SERVER,
        TRUSTED_CLIENT,
        "ok",
    ),
    Scenario(
        "revoked-client-cert",
        "server has CRLs for every CA of the client chain; client leaf revoked",
        CRL_SERVER,
        _presenting("client-revoked"),
        "reported:revoked",
        _openssl("CERT_REVOKED"),
    ),
    Scenario(
        "accidental-trust",
        "client leaf from the server's own PKI; server trusts only the alternate root",
        TRUSTING_SERVER,
        _presenting("client-from-server-pki"),
        # --root-ca replaces the default roots: the server root is nowhere in the store.
        "reported:untrusted",
        _openssl("UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    ),
    Scenario(
        "mismatched-client-key",
        "client key does not match its certificate",
        TRUSTING_SERVER,
        _presenting("client-mismatched-key"),
        "client-error:key-mismatch",
    ),
    # --- from production (SPEC §7b): what users trip over ---
    Scenario(
        "rsa-client-cert",
        "client leaf with an RSA-2048 key (the CA chain is EC by default)",
        TRUSTING_SERVER,
        _presenting("client-rsa2048"),
        "ok",
    ),
    Scenario(
        "p384-client-cert",
        "client leaf with an EC P-384 key",
        TRUSTING_SERVER,
        _presenting("client-p384"),
        "ok",
    ),
    Scenario(
        "ed25519-client-cert",
        "client leaf with an Ed25519 key: its CertificateVerify needs the ed25519 scheme",
        TRUSTING_SERVER,
        _presenting("client-ed25519"),
        "ok",
    ),
    Scenario(
        "sha1-signed-client-cert",
        "client leaf signed by its CA with SHA-1",
        TRUSTING_SERVER,
        _presenting("client-sha1-signed"),
        # OpenSSL 3.0 gives SHA-1 63 bits of security (crypto/x509/x509_set.c); Debian's
        # default security level 2 asks 112, so check_sig_level refuses the leaf.
        "reported:weak",
        _openssl("CA_MD_TOO_WEAK"),
    ),
    Scenario(
        "rsa1024-client-cert",
        "client leaf with an RSA-1024 key",
        TRUSTING_SERVER,
        _presenting("client-rsa1024"),
        # Security level 2 (Debian's default) asks 112 bits; RSA-1024 gives 80
        # (crypto/x509/x509_vfy.c check_key_level).
        "reported:weak",
        _openssl("EE_KEY_TOO_SMALL"),
    ),
    Scenario(
        "no-eku-client-cert",
        "client leaf without an extendedKeyUsage extension (the pair of server-auth-eku)",
        TRUSTING_SERVER,
        _presenting("client-no-eku"),
        # RFC 5280 §4.2.1.12: without the extension the key may be used for any purpose.
        "ok",
    ),
    Scenario(
        "expired-intermediate",
        "client leaf valid, its intermediate CA expired",
        TRUSTING_SERVER,
        _presenting("client-expired-intermediate"),
        # RFC 5280 §6.1.3 (a)(2): every certificate of the path must be within its validity.
        "reported:expired",
        _openssl("CERT_HAS_EXPIRED"),
    ),
    Scenario(
        "unknown-critical-extension",
        "client leaf with an extension no stack knows, marked critical",
        TRUSTING_SERVER,
        _presenting("client-unknown-critical-ext"),
        # RFC 5280 §4.2: a certificate with an unrecognized critical extension must be
        # rejected. OpenSSL's name for it has no class of its own (harness/rulesets).
        "reported:other",
        _openssl("UNHANDLED_CRITICAL_EXTENSION"),
    ),
    Scenario(
        "crl-missing-for-intermediate",
        "server has the CRL of the client's issuing CA only; client not revoked",
        ServerSide(root_ca=CLIENT_ROOT, crl=ISSUER_CRL_ONLY),
        TRUSTED_CLIENT,
        # The OpenSSL-based servers check revocation along the whole chain
        # (X509_V_FLAG_CRL_CHECK_ALL), so the root's missing CRL fails a good leaf.
        "reported:no-crl",
        _openssl("UNABLE_TO_GET_CRL"),
    ),
    Scenario(
        "ca-names-mismatch",
        "server trusts the client's root, but its CertificateRequest names only an unrelated CA",
        ServerSide(root_ca=CLIENT_ROOT, ca_names=UNRELATED_CA),
        TRUSTED_CLIENT,
        # RFC 8446 §4.3.2 / RFC 5246 §7.4.4: the names are a hint. A client that sends its
        # chain anyway is trusted; one that honours the hint withholds it (manifests).
        "ok",
        wire=Wire(client_certificate_count=2, ca_names=(UNRELATED_CA_DN,), ca_names_count=1),
    ),
    Scenario(
        "no-ca-names",
        "server trusts the client's root and its CertificateRequest lists no CA names",
        ServerSide(root_ca=CLIENT_ROOT, ca_names=NO_CA_NAMES),
        TRUSTED_CLIENT,
        # RFC 5246 §7.4.4: an empty list means the client may send any certificate.
        "ok",
        wire=Wire(client_certificate_count=2, ca_names_count=0),
    ),
    Scenario(
        "huge-ca-list",
        f"server trusts {HUGE_CA_COUNT} extra CAs besides the client's root: their names pass 64 KiB",
        ServerSide(root_ca=HUGE_CA_LIST),
        TRUSTED_CLIENT,
        # certificate_authorities is DistinguishedName<3..2^16-1> (RFC 5246 §7.4.4, RFC 8446
        # §4.2.4): the list cannot be sent. OpenSSL 3.0's construct_ca_names fails its
        # WPACKET length and the handshake ends with internal_error (ssl/statem/statem_lib.c).
        "server-rejected:internal_error",
        # Where a server sends it anyway (a truncated length) the capture shows its size.
        wire=Wire(unreadable_request_bytes=65536),
    ),
    Scenario(
        "intermediate-cache",
        "a good chain first, then the leaf without its intermediate, on one server process",
        TRUSTING_SERVER,
        ClientSide(cert=CLIENT_LEAF, key=CLIENT_KEY),
        # Each connection is verified on its own (RFC 5246 §7.4.6, RFC 8446 §4.4.2: the
        # client sends the chain): the second, leaf-only, request fails as in
        # leaf-without-intermediate, unless the server kept the first request's intermediate.
        "reported:untrusted",
        _openssl("UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
        before=(TRUSTED_CLIENT,),
        like="leaf-without-intermediate",
    ),
    Scenario(
        "per-path-client-auth",
        "the certificate is asked for only on /secure (--auth-path): a request to / first, then /secure",
        ServerSide(root_ca=CLIENT_ROOT, auth_path=SECURE_PATH),
        ClientSide(cert=CLIENT_CHAIN, key=CLIENT_KEY, path=SECURE_PATH),
        # The server asks after the first handshake: TLS 1.2 by renegotiation (RFC 5746),
        # TLS 1.3 by post-handshake authentication (RFC 8446 §4.6.2), which a client must
        # have offered (post_handshake_auth). A client that answers is trusted.
        "ok",
        before=(ClientSide(cert=CLIENT_CHAIN, key=CLIENT_KEY, path="/"),),
        wire=Wire(client_certificate_count=2, certificate_verify=True, certificate_request_after_handshake=True),
    ),
    # --- the same bad cases with --require ---
    Scenario(
        "require-no-client-cert",
        "client sends no certificate (--require)",
        ServerSide(require=True),
        ClientSide(),
        "server-rejected:certificate_required",
        by_tls=(NO_CERT_ALERT_12,),
        wire=Wire(client_certificate_count=0, certificate_verify=False),
    ),
    Scenario(
        "require-trusted-ca-no-client-cert",
        "server trusts the alternate root; client sends nothing (--require)",
        ServerSide(root_ca=CLIENT_ROOT, require=True),
        ClientSide(),
        "server-rejected:certificate_required",
        by_tls=(NO_CERT_ALERT_12,),
        wire=Wire(client_certificate_count=0, certificate_verify=False),
    ),
    _require(
        "untrusted-client-ca",
        "server without --root-ca; client sends the alternate chain",
        ServerSide(),
        TRUSTED_CLIENT,
        "unknown_ca",
    ),
    _require(
        "leaf-without-intermediate",
        "client sends its leaf only",
        TRUSTING_SERVER,
        ClientSide(cert=CLIENT_LEAF, key=CLIENT_KEY),
        "unknown_ca",
    ),
    _require(
        "expired-client-cert",
        "client leaf expired",
        TRUSTING_SERVER,
        _presenting("client-expired"),
        "certificate_expired",
    ),
    _require(
        "not-yet-valid-client-cert",
        "client leaf not yet valid",
        TRUSTING_SERVER,
        _presenting("client-not-yet-valid"),
        "bad_certificate",
    ),
    _require(
        "server-auth-eku",
        "client leaf with EKU serverAuth only",
        TRUSTING_SERVER,
        _presenting("client-server-auth-eku"),
        "unsupported_certificate",
    ),
    _require(
        "self-signed-client-cert",
        "client sends a self-signed leaf",
        TRUSTING_SERVER,
        _presenting("client-self-signed"),
        "unknown_ca",
    ),
    _require(
        "non-ca-issuer",
        "client leaf signed by a CA:FALSE certificate",
        TRUSTING_SERVER,
        _presenting("client-non-ca-issuer"),
        "unknown_ca",
    ),
    _require(
        "revoked-client-cert", "client leaf revoked", CRL_SERVER, _presenting("client-revoked"), "certificate_revoked"
    ),
    Scenario(
        "require-trusted-client",
        "server trusts the alternate root; client sends its chain (--require)",
        ServerSide(root_ca=CLIENT_ROOT, require=True),
        TRUSTED_CLIENT,
        "ok",
    ),
    # --- the client's trust in the server ---
    Scenario(
        "client-no-server-ca",
        "client without --root-ca",
        TRUSTING_SERVER,
        ClientSide(cert=CLIENT_CHAIN, key=CLIENT_KEY, root_ca=None),
        "client-rejected:untrusted",
    ),
    Scenario(
        "server-leaf-only",
        "server sends its leaf without the intermediate",
        ServerSide(cert=variant_chain("server-leaf-only"), key=variant_key("server-leaf-only"), root_ca=CLIENT_ROOT),
        TRUSTED_CLIENT,
        "client-rejected:untrusted",
    ),
    Scenario(
        "wrong-hostname",
        "server leaf issued for another host name",
        ServerSide(
            cert=variant_chain("server-wrong-hostname"), key=variant_key("server-wrong-hostname"), root_ca=CLIENT_ROOT
        ),
        TRUSTED_CLIENT,
        "client-rejected:hostname",
        client_needs=("hostname-check",),
    ),
    Scenario(
        "expired-server-cert",
        "server leaf expired",
        ServerSide(cert=variant_chain("server-expired"), key=variant_key("server-expired"), root_ca=CLIENT_ROOT),
        TRUSTED_CLIENT,
        "client-rejected:expired",
    ),
    Scenario(
        "client-auth-eku-server",
        "server leaf with EKU clientAuth only",
        ServerSide(
            cert=variant_chain("server-client-auth-eku"), key=variant_key("server-client-auth-eku"), root_ca=CLIENT_ROOT
        ),
        TRUSTED_CLIENT,
        "client-rejected:purpose",
    ),
)

BY_ID = {s.id: s for s in CATALOGUE}

#: Why each scenario's default verdict is the default, and its source, as data.
DEFAULTS = Path(__file__).with_name("defaults.toml")


@cache
def defaults() -> dict[str, tuple[str, str]]:
    """harness/defaults.toml: scenario id -> (why, source), one for every scenario."""
    document = tomllib.loads(DEFAULTS.read_text())
    found: dict[str, tuple[str, str]] = {}
    for scenario_id, entry in document.items():
        why, source = entry.get("why"), entry.get("source")
        if not (isinstance(why, str) and why and isinstance(source, str) and source):
            raise ValueError(f"{DEFAULTS}: [{scenario_id}] needs a why and a source")
        found[scenario_id] = (why, source)
    return found


TUTORIAL_IDS = tuple(s.id for s in CATALOGUE if s.tutorial)


def select(ids: Iterable[str] | None) -> list[Scenario]:
    """The scenarios named by ``ids`` (all when empty), or a UsageError naming the unknown."""
    wanted = list(ids or [])
    if not wanted:
        return list(CATALOGUE)
    unknown = [i for i in wanted if i not in BY_ID]
    if unknown:
        raise UsageError(f"unknown scenario {', '.join(unknown)}: see `mtls-harness scenarios` for the ids")
    return [BY_ID[i] for i in dict.fromkeys(wanted)]
