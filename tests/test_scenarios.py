"""The catalogue as data: complete, consistent, and selectable."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness import certs, registry, scenarios
from harness.cells import plan
from harness.errors import UsageError
from harness.judgement import wire_mismatches
from harness.rules import check_verdict
from harness.scenarios import BY_ID, CATALOGUE, NO_CA_NAMES, TUTORIAL_IDS, select

REGISTRY = registry.default()

SPEC_IDS = {
    "no-client-cert",
    "untrusted-client-ca",
    "trusted-client",
    "trusted-ca-no-client-cert",
    "leaf-without-intermediate",
    "intermediate-only-anchor",
    "expired-client-cert",
    "not-yet-valid-client-cert",
    "server-auth-eku",
    "self-signed-client-cert",
    "non-ca-issuer",
    "crl-good-client",
    "revoked-client-cert",
    "accidental-trust",
    "mismatched-client-key",
    "client-no-server-ca",
    "server-leaf-only",
    "wrong-hostname",
    "expired-server-cert",
    "client-auth-eku-server",
}
#: SPEC §7's OpenSSL names, pinned as the native words of OpenSSL-based servers.
OPENSSL_NATIVE = {
    "no-client-cert": "UNABLE_TO_GET_ISSUER_CERT",
    "untrusted-client-ca": "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    "trusted-ca-no-client-cert": "UNABLE_TO_GET_ISSUER_CERT",
    "leaf-without-intermediate": "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "intermediate-only-anchor": "UNABLE_TO_GET_ISSUER_CERT",
    "expired-client-cert": "CERT_HAS_EXPIRED",
    "not-yet-valid-client-cert": "CERT_NOT_YET_VALID",
    "server-auth-eku": "INVALID_PURPOSE",
    "self-signed-client-cert": "DEPTH_ZERO_SELF_SIGNED_CERT",
    "revoked-client-cert": "CERT_REVOKED",
}


def test_every_spec_scenario_is_in_the_catalogue() -> None:
    assert set(BY_ID) >= SPEC_IDS
    assert any(s.id.startswith("require-") for s in CATALOGUE)


def test_ids_are_unique() -> None:
    assert len(BY_ID) == len(CATALOGUE)


def test_every_default_carries_its_why_and_source_as_data() -> None:
    """harness/defaults.toml: one entry per scenario, none for an id the catalogue lacks
    (tests/test_citations.py checks each source like a manifest's)."""
    assert set(scenarios.defaults()) == set(BY_ID)
    for scenario in CATALOGUE:
        assert len(scenario.why) > 20 and scenario.source, scenario.id


def test_tutorial_scenarios_are_the_four_of_the_tutorial() -> None:
    assert set(TUTORIAL_IDS) == {"no-client-cert", "untrusted-client-ca", "trusted-client", "trusted-ca-no-client-cert"}


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[s.id for s in CATALOGUE])
def test_verdicts_are_stack_neutral_classes_and_every_tls_difference_has_a_reason(scenario) -> None:  # type: ignore[no-untyped-def]
    check_verdict(scenario.expected, scenario.id)
    assert not re.search(r"[A-Z]", scenario.expected), "a class, not a stack's native name"
    for case in scenario.by_tls:
        check_verdict(case.verdict, scenario.id)
        assert len(case.reason) > 20


def test_spec_openssl_names_stay_pinned_as_native_words() -> None:
    for scenario_id, name in OPENSSL_NATIVE.items():
        assert BY_ID[scenario_id].native == {"openssl": name}
    assert BY_ID["non-ca-issuer"].native == {"openssl": "KEYUSAGE_NO_CERTSIGN"}


@pytest.mark.parametrize("impl", REGISTRY.impls, ids=[i.name for i in REGISTRY.impls])
def test_every_stack_difference_names_its_rule_and_source(impl: registry.Impl) -> None:
    for expect in impl.expectations:
        check_verdict(expect.verdict, expect.origin)
        assert len(expect.rule) > 20, expect.origin
        assert re.search(r"https?://|\.(c|cc|go|rs|js|py|java|erl):?\d*", expect.source), expect.origin


def test_every_referenced_file_is_written_by_the_pki_builder(tmp_path: Path) -> None:
    certs.build(tmp_path)
    for scenario in CATALOGUE:
        for side in (scenario.server, scenario.client):
            for key, value in vars(side).items():
                if key in ("auth_path", "path"):
                    continue  # URL paths, not files
                if isinstance(value, str) and not (key == "ca_names" and value == NO_CA_NAMES):
                    assert (tmp_path / value).is_file(), f"{scenario.id}: {value}"


def test_require_mode_pairs_every_failure_with_a_success() -> None:
    """Every require-mode scenario ``require-X`` is report-mode ``X`` with ``--require``: the
    same client side, the same server side but for the mode. So a cell's require verdict
    reads against its report verdict, and the failures against ``require-trusted-client``."""
    require = [s for s in CATALOGUE if s.server.require]
    assert [s.id for s in require if s.expected == "ok"] == ["require-trusted-client"]
    for scenario in require:
        assert scenario.id.startswith("require-"), scenario.id
        twin = BY_ID.get(scenario.id.removeprefix("require-"))
        assert twin is not None and not twin.server.require, f"{scenario.id}: no report-mode twin"
        assert twin.client == scenario.client, scenario.id
        assert dataclasses.replace(twin.server, require=True) == scenario.server, scenario.id
        failed = scenario.expected != "ok"
        assert failed == (twin.expected != "ok"), f"{scenario.id}: {scenario.expected} vs {twin.id}: {twin.expected}"


def test_plan_counts_and_ids() -> None:
    cells = plan(REGISTRY)
    assert len(cells) == len(CATALOGUE) * 2 * len(REGISTRY.servers) * len(REGISTRY.clients)
    assert "node-server--curl-client--no-client-cert--tls1.3" in {c.id for c in cells}
    tutorial = plan(REGISTRY, scenario_ids=TUTORIAL_IDS)
    assert len(tutorial) == 2 * len(REGISTRY.servers) * len(REGISTRY.clients) * 4


def test_openssl_servers_must_report_the_spec_names_unless_their_manifest_differs() -> None:
    cells = {c.id: c for c in plan(REGISTRY, servers=["node", "python"], clients=["curl"])}
    expected = cells["python-server--curl-client--no-client-cert--tls1.3"].expected
    assert (expected.verdict, expected.native, expected.rule) == ("reported:no-cert", "UNABLE_TO_GET_ISSUER_CERT", "")
    node = cells["node-server--curl-client--non-ca-issuer--tls1.2"].expected
    assert (node.verdict, node.native) == ("reported:other", "UNSPECIFIED")
    assert "X509ErrorCode" in node.rule + node.source
    python = cells["python-server--curl-client--non-ca-issuer--tls1.2"].expected
    assert (python.verdict, python.native) == ("reported:invalid-ca", "KEYUSAGE_NO_CERTSIGN")
    tls12 = cells["python-server--curl-client--require-no-client-cert--tls1.2"].expected
    assert tls12.verdict == "server-rejected:handshake_failure" and "RFC 5246" in tls12.rule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"servers": ["no-such-server"]}, "unknown server implementation 'no-such-server'"),
        ({"clients": ["wget"]}, "unknown client implementation 'wget'"),
        ({"scenario_ids": ["nope"]}, "unknown scenario nope"),
        ({"tls": ["1.1"]}, "unknown TLS version '1.1'"),
    ],
)
def test_unknown_ids_are_usage_errors(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        plan(REGISTRY, **kwargs)  # type: ignore[arg-type]


def test_select_keeps_order_and_drops_repeats() -> None:
    assert [s.id for s in select(["trusted-client", "no-client-cert", "trusted-client"])] == [
        "trusted-client",
        "no-client-cert",
    ]


def _wire(
    count: int | None = 0,
    verify: bool = False,
    cas: list[str] | None = None,
    alerts: list[dict[str, str]] | None = None,
) -> dict[str, object]:
    return {
        "client_certificate_count": count,
        "certificate_verify": verify,
        "certificate_request_cas": cas or [],
        "alerts": alerts or [],
    }


def test_wire_expectations_catch_each_difference() -> None:
    no_cert = BY_ID["no-client-cert"]
    assert wire_mismatches(no_cert, no_cert.expected, _wire(0)) == []
    assert "expected 0 certificate(s), saw 2" in wire_mismatches(no_cert, no_cert.expected, _wire(2, True))[0]
    assert wire_mismatches(no_cert, no_cert.expected, None) == ["no TLS connection was captured for this cell"]
    named = BY_ID["trusted-ca-no-client-cert"]
    assert wire_mismatches(named, named.expected, _wire(0, cas=["CN=mtls-harness Client PKI Root CA,O=x"])) == []
    assert "should name" in wire_mismatches(named, named.expected, _wire(0, cas=[]))[0]


def test_wire_alert_follows_the_expected_rejection() -> None:
    scenario = BY_ID["require-expired-client-cert"]
    fatal = [{"from": "server", "level": "fatal", "description": "certificate_expired"}]
    assert wire_mismatches(scenario, "server-rejected:certificate_expired", _wire(2, True, alerts=fatal)) == []
    assert (
        "should send the certificate_expired alert"
        in wire_mismatches(scenario, "server-rejected:certificate_expired", _wire(2, True))[0]
    )
    assert "without an alert" in wire_mismatches(scenario, "server-rejected:closed", _wire(2, True, alerts=fatal))[0]


def test_an_http_refusal_sends_no_alert() -> None:
    scenario = BY_ID["require-expired-client-cert"]
    fatal = [{"from": "server", "level": "fatal", "description": "certificate_expired"}]
    assert wire_mismatches(scenario, "server-rejected:http-400", _wire(2, True)) == []
    problems = wire_mismatches(scenario, "server-rejected:http-400", _wire(2, True, alerts=fatal))
    assert "answer http-400 without an alert" in problems[0]


def test_a_stack_whose_handshake_never_starts_is_asserted_on_what_the_wire_does_show() -> None:
    """lighttpd with wolfSSL closes on a ClientHello that asks for OCSP stapling: its
    expectation says wire = "no-server-hello", and that is what is checked."""
    scenario = BY_ID["trusted-client"]
    closed = "server-rejected:closed"
    hello_only = {"tls_version": None, "client_certificate_count": None, "alerts": []}
    assert wire_mismatches(scenario, closed, hello_only, override="no-server-hello") == []
    answered = dict(_wire(2, True), tls_version="1.3")
    assert "after the ClientHello" in wire_mismatches(scenario, closed, answered, override="no-server-hello")[0]
    alerted = dict(hello_only, alerts=[{"from": "server", "level": "fatal", "description": "handshake_failure"}])
    assert "without an alert" in wire_mismatches(scenario, closed, alerted, override="no-server-hello")[0]
    assert wire_mismatches(scenario, closed, None, override="no-server-hello") == [
        "no TLS connection was captured for this cell"
    ]
    aborted = dict(hello_only, tls_version="1.3")
    assert wire_mismatches(scenario, "client-rejected:other", aborted, override="client-aborts") == []
    assert (
        "before its Certificate"
        in wire_mismatches(scenario, "client-rejected:other", _wire(2, True), override="client-aborts")[0]
    )


def test_a_handshake_without_its_key_log_is_not_asked_what_it_hides() -> None:
    no_cert = BY_ID["no-client-cert"]
    assert wire_mismatches(no_cert, no_cert.expected, {"tls_version": "1.3"}, readable=False) == []
    named = BY_ID["trusted-ca-no-client-cert"]
    assert wire_mismatches(named, named.expected, _wire(0, cas=[]), ca_names=False) == []


def test_a_scenario_of_several_requests_is_judged_like_its_last_request() -> None:
    """Its last request is its ``like`` scenario's, so every stack's expectation of that
    scenario holds for it too, unless a manifest names the scenario itself; and its
    earlier requests are something else than the judged one, or they would prove nothing."""
    several = [s for s in CATALOGUE if s.like is not None]
    assert several
    for scenario in several:
        like = BY_ID[scenario.like or ""]
        assert scenario.before and scenario.client not in scenario.before, scenario.id
        assert (scenario.client, scenario.server) == (like.client, like.server), scenario.id
        assert all(scenario.default(tls) == like.default(tls) for tls in scenario.tls), scenario.id
        named = {
            (impl.name, e.role) for impl in REGISTRY.impls for e in impl.expectations if scenario.id in e.scenarios
        }
        taken = 0
        for server in REGISTRY.servers:
            for client in REGISTRY.clients:
                if (server, "server") in named or (client, "client") in named:
                    continue
                for tls in scenario.tls:
                    own = REGISTRY.expectation(server, client, scenario, tls)
                    theirs = REGISTRY.expectation(server, client, like, tls)
                    assert (own.verdict, own.rule) == (theirs.verdict, theirs.rule), (scenario.id, server, client, tls)
                    taken += theirs.rule != ""
        assert taken, f"{scenario.id}: no stack's expectation of {like.id} was checked"


def test_ca_names_wire_shows_the_names_and_what_the_client_did() -> None:
    mismatch = BY_ID["ca-names-mismatch"]
    listed = {
        "certificate_request": True,
        "certificate_request_cas": ["CN=mtls-harness Unrelated PKI Root CA,O=mtls-harness Unrelated PKI"],
    }
    sent = {"client_certificate_count": 2, **listed}
    withheld = {"client_certificate_count": 0, **listed}
    assert wire_mismatches(mismatch, "ok", sent) == []
    # A client that withholds (its expectation says no-cert) must show an empty Certificate ...
    assert wire_mismatches(mismatch, "reported:no-cert", withheld) == []
    assert wire_mismatches(mismatch, "reported:no-cert", sent)
    # ... and one expected to send it must show both certificates.
    assert wire_mismatches(mismatch, "ok", withheld)
    # The names: exactly the unrelated CA, nothing else.
    both = {
        **sent,
        "certificate_request_cas": [*listed["certificate_request_cas"], "CN=mtls-harness Client PKI Root CA"],
    }
    assert any("list 1 CA name" in p for p in wire_mismatches(mismatch, "ok", both))
    none = BY_ID["no-ca-names"]
    assert wire_mismatches(none, "ok", {"client_certificate_count": 2, "certificate_request_cas": []}) == []
    assert wire_mismatches(none, "ok", sent)
    # A server whose CertificateRequest names no CA by design is not asked for names.
    assert wire_mismatches(mismatch, "ok", {"client_certificate_count": 2}, ca_names=False) == []


def test_per_path_wire_asks_after_the_handshake_only_where_the_client_answered() -> None:
    per_path = BY_ID["per-path-client-auth"]
    answered = {
        "tls_version": "1.3",
        "client_certificate_count": 2,
        "certificate_verify": True,
        "certificate_request_after_handshake": True,
    }
    assert wire_mismatches(per_path, "ok", answered) == []
    in_handshake = {**answered, "certificate_request_after_handshake": False}
    assert any("after the handshake" in p for p in wire_mismatches(per_path, "ok", in_handshake))
    # A client that cannot answer (no post_handshake_auth): its messages are not asserted.
    refused = {"tls_version": "1.3", "client_certificate_count": None, "certificate_verify": False}
    assert wire_mismatches(per_path, "server-rejected:http-403", refused) == []
    # A TLS 1.2 default that differs by version keeps its own assertions.
    require = BY_ID["require-no-client-cert"]
    sent = {"tls_version": "1.2", "client_certificate_count": 2, "certificate_verify": True, "alerts": []}
    problems = wire_mismatches(require, "server-rejected:handshake_failure", sent)
    assert any("0 certificate" in p for p in problems)


def test_no_certificate_shows_an_empty_certificate_only_where_the_server_asked() -> None:
    per_path = BY_ID["per-path-client-auth"]
    not_asked = {"tls_version": "1.3", "certificate_request": False, "client_certificate_count": None}
    assert wire_mismatches(per_path, "reported:no-cert", not_asked) == []
    mismatch = BY_ID["ca-names-mismatch"]
    asked = {"tls_version": "1.3", "certificate_request": True, "client_certificate_count": 2}
    assert wire_mismatches(mismatch, "reported:no-cert", asked)
