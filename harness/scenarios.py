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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class ClientSide:
    """What the client presents and trusts."""

    cert: str | None = None
    key: str | None = None
    root_ca: str | None = SERVER_ROOT


#: The alternate (client) root's name as a CertificateRequest lists it (harness.certs).
CLIENT_ROOT_DN = "CN=mtls-harness Client PKI Root CA"


@dataclass(frozen=True)
class Wire:
    """What a capture of the cell must show (SPEC §9); None means "not asserted".

    A server's alert is asserted for every ``server-rejected`` expectation without
    being listed here: the named alert, or no alert at all for ``closed``.
    """

    client_certificate_count: int | None = None
    certificate_verify: bool | None = None
    ca_names: tuple[str, ...] = ()


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

    def default(self, tls: str) -> tuple[str, str]:
        """(the catalogue's verdict for ``tls``, the reason when the TLS version changes it, or "")."""
        for case in self.by_tls:
            if case.tls == tls:
                return case.verdict, case.reason
        return self.expected, ""


def _client(name: str) -> ClientSide:
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
        ServerSide(server.cert, server.key, server.root_ca, True, server.crl),
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
        _client("client-expired"),
        "reported:expired",
        _openssl("CERT_HAS_EXPIRED"),
    ),
    Scenario(
        "not-yet-valid-client-cert",
        "client leaf not yet valid",
        TRUSTING_SERVER,
        _client("client-not-yet-valid"),
        "reported:not-yet-valid",
        _openssl("CERT_NOT_YET_VALID"),
    ),
    Scenario(
        "server-auth-eku",
        "client leaf with EKU serverAuth only",
        TRUSTING_SERVER,
        _client("client-server-auth-eku"),
        "reported:purpose",
        _openssl("INVALID_PURPOSE"),
    ),
    Scenario(
        "self-signed-client-cert",
        "client sends a self-signed leaf",
        TRUSTING_SERVER,
        _client("client-self-signed"),
        "reported:untrusted",
        _openssl("DEPTH_ZERO_SELF_SIGNED_CERT"),
    ),
    Scenario(
        "non-ca-issuer",
        "client leaf signed by a CA:FALSE certificate whose keyUsage lacks keyCertSign",
        TRUSTING_SERVER,
        _client("client-non-ca-issuer"),
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
        _client("client-revoked"),
        "reported:revoked",
        _openssl("CERT_REVOKED"),
    ),
    Scenario(
        "accidental-trust",
        "client leaf from the server's own PKI; server trusts only the alternate root",
        TRUSTING_SERVER,
        _client("client-from-server-pki"),
        # --root-ca replaces the default roots: the server root is nowhere in the store.
        "reported:untrusted",
        _openssl("UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    ),
    Scenario(
        "mismatched-client-key",
        "client key does not match its certificate",
        TRUSTING_SERVER,
        _client("client-mismatched-key"),
        "client-error:key-mismatch",
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
        "expired-client-cert", "client leaf expired", TRUSTING_SERVER, _client("client-expired"), "certificate_expired"
    ),
    _require(
        "not-yet-valid-client-cert",
        "client leaf not yet valid",
        TRUSTING_SERVER,
        _client("client-not-yet-valid"),
        "bad_certificate",
    ),
    _require(
        "server-auth-eku",
        "client leaf with EKU serverAuth only",
        TRUSTING_SERVER,
        _client("client-server-auth-eku"),
        "unsupported_certificate",
    ),
    _require(
        "self-signed-client-cert",
        "client sends a self-signed leaf",
        TRUSTING_SERVER,
        _client("client-self-signed"),
        "unknown_ca",
    ),
    _require(
        "non-ca-issuer",
        "client leaf signed by a CA:FALSE certificate",
        TRUSTING_SERVER,
        _client("client-non-ca-issuer"),
        "unknown_ca",
    ),
    _require(
        "revoked-client-cert", "client leaf revoked", CRL_SERVER, _client("client-revoked"), "certificate_revoked"
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


def wire_mismatches(
    scenario: Scenario,
    expected: str,
    wire: dict[str, Any] | None,
    *,
    readable: bool = True,
    ca_names: bool = True,
    override: str | None = None,
) -> list[str]:
    """How a captured connection differs from what ``scenario`` says the wire shows.

    ``readable=False``: a TLS 1.3 handshake without a key log (a client stack that has
    none, images/*/impl.toml ``unsupported.keylog``): everything after the ServerHello is
    encrypted, so only that a connection was made is checked. ``ca_names=False``: the
    server's CertificateRequest lists no names by design (``unsupported.ca-names``).
    ``override``: the cell's expectation says what the capture shows instead of the
    scenario's wire (registry.WIRE_OVERRIDES): "no-server-hello", the server ends the
    connection after the ClientHello without an alert; "client-aborts", the client ends
    the handshake before any Certificate of its own.
    """
    want = scenario.wire
    asserted = want != Wire() or expected.startswith("server-rejected:") or override is not None
    if wire is None:
        # A client that fails before its handshake (a key that does not match) leaves
        # no TLS connection; that is a problem only where the wire is asserted.
        return ["no TLS connection was captured for this cell"] if asserted else []
    if override == "client-aborts":
        sent = wire.get("client_certificate_count")
        return [] if sent is None else [f"the client should end the handshake before its Certificate; it sent {sent}"]
    if override == "no-server-hello":
        seen = []
        if wire.get("tls_version"):
            seen.append(
                f"the server should end the connection after the ClientHello; it answered TLS {wire['tls_version']}"
            )
        sent = [str(a["description"]) for a in wire.get("alerts") or [] if a["from"] == "server"]
        if sent:
            seen.append(f"the server should close without an alert; it sent {sent}")
        return seen
    if not readable:
        return []
    problems = []
    want = scenario.wire
    if (
        want.client_certificate_count is not None
        and wire.get("client_certificate_count") != want.client_certificate_count
    ):
        problems.append(
            f"client Certificate message: expected {want.client_certificate_count} certificate(s), "
            f"saw {wire.get('client_certificate_count')}"
        )
    if want.certificate_verify is not None and wire.get("certificate_verify") != want.certificate_verify:
        problems.append(f"CertificateVerify: expected {want.certificate_verify}, saw {wire.get('certificate_verify')}")
    listed = [str(name) for name in wire.get("certificate_request_cas") or []]
    for name in want.ca_names if ca_names else ():
        if not any(name in dn for dn in listed):
            problems.append(f"CertificateRequest should name {name!r}; it listed {listed}")
    if expected.startswith("server-rejected:"):
        alert = expected.split(":", 1)[1]
        sent = [
            str(a["description"])
            for a in wire.get("alerts") or []
            if a["from"] == "server" and a["description"] != "close_notify"
        ]
        quiet = alert == "closed" or alert.startswith("http-")  # no alert: a close, or an HTTP refusal
        if quiet and sent:
            how = "close" if alert == "closed" else f"answer {alert}"
            problems.append(f"the server should {how} without an alert; it sent {sent}")
        if not quiet and alert not in sent:
            problems.append(f"the server should send the {alert} alert; it sent {sent or 'none'}")
    return problems
