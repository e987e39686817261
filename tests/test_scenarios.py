"""The catalogue as data: complete, consistent, and selectable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import certs, impls
from harness.errors import UsageError
from harness.matrix import plan
from harness.scenarios import BY_ID, CATALOGUE, TUTORIAL_IDS, select, wire_mismatches

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
VERDICT = re.compile(
    r"^(ok|unsupported|timeout|reported:[A-Z0-9_]+|server-rejected:[a-z_]+|"
    r"client-rejected:(untrusted|hostname|expired|not-yet-valid|purpose|other)|client-error:[a-z-]+)$"
)


def test_every_spec_scenario_is_in_the_catalogue() -> None:
    assert set(BY_ID) >= SPEC_IDS
    assert any(s.id.startswith("require-") for s in CATALOGUE)


def test_ids_are_unique() -> None:
    assert len(BY_ID) == len(CATALOGUE)


def test_tutorial_scenarios_are_the_four_of_the_tutorial() -> None:
    assert set(TUTORIAL_IDS) == {"no-client-cert", "untrusted-client-ca", "trusted-client", "trusted-ca-no-client-cert"}


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[s.id for s in CATALOGUE])
def test_verdicts_are_well_formed_and_every_override_has_a_reason(scenario) -> None:  # type: ignore[no-untyped-def]
    assert VERDICT.match(scenario.expected), scenario.expected
    for override in scenario.overrides:
        assert VERDICT.match(override.verdict)
        assert len(override.reason) > 20
        assert override.server in (None, *impls.SERVERS)
        assert override.client in (None, *impls.CLIENTS)


def test_every_referenced_file_is_written_by_the_pki_builder(tmp_path: Path) -> None:
    certs.build(tmp_path)
    for scenario in CATALOGUE:
        for side in (scenario.server, scenario.client):
            for value in vars(side).values():
                if isinstance(value, str):
                    assert (tmp_path / value).is_file(), f"{scenario.id}: {value}"


def test_require_mode_pairs_every_failure_with_a_success() -> None:
    require = [s for s in CATALOGUE if s.server.require]
    assert any(s.expected == "ok" for s in require)
    assert all(s.id.startswith("require-") for s in require)


def test_plan_counts_and_ids() -> None:
    cells = plan()
    assert len(cells) == len(CATALOGUE) * 2 * 2 * 3
    assert "node-server--curl-client--no-client-cert--tls1.3" in {c.id for c in cells}
    tutorial = plan(scenario_ids=TUTORIAL_IDS)
    assert len(tutorial) == 2 * 3 * 4 * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"servers": ["nginx"]}, "unknown server implementation 'nginx'"),
        ({"clients": ["wget"]}, "unknown client implementation 'wget'"),
        ({"scenario_ids": ["nope"]}, "unknown scenario nope"),
        ({"tls": ["1.1"]}, "unknown TLS version '1.1'"),
    ],
)
def test_unknown_ids_are_usage_errors(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        plan(**kwargs)  # type: ignore[arg-type]


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
