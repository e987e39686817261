"""The verdict engine on real outputs recorded from the tools (tests/fixtures/outputs).

Each fixture holds what a client printed in one real cell; the verdict it must map to
comes from the scenario catalogue (the spec), not from the run that recorded it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import verdicts
from harness.matrix import plan
from harness.verdicts import Evidence, decide

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "outputs").glob("*.json"))
CELLS = {cell.id: cell for cell in plan()}


def test_fixtures_cover_every_client_and_verdict_kind() -> None:
    loaded = [json.loads(p.read_text()) for p in FIXTURES]
    assert {f["client"] for f in loaded} == {"curl", "node", "python"}
    kinds = {CELLS[f["cell"]].expectation()[0].split(":")[0] for f in loaded}
    assert kinds >= {"ok", "reported", "server-rejected", "client-rejected", "client-error"}


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_recorded_output_maps_to_the_specified_verdict(path: Path) -> None:
    fixture = json.loads(path.read_text())
    cell = CELLS[fixture["cell"]]
    expected, _reason = cell.expectation()
    evidence = Evidence(fixture["client"], fixture["exit_code"], fixture["stdout"], fixture["stderr"])
    assert decide(evidence) == expected


@pytest.mark.parametrize(
    ("client", "stdout", "body"),
    [
        ("curl", '{"mTLSValid": true}\n', {"mTLSValid": True}),
        (
            "node",
            'Response: {"mTLSValid":false,"reason":"UNABLE_TO_GET_ISSUER_CERT"}\n',
            {"mTLSValid": False, "reason": "UNABLE_TO_GET_ISSUER_CERT"},
        ),
        (
            "node",
            "{ mTLSValid: false, reason: 'CERT_HAS_EXPIRED' }\n",
            {"mTLSValid": False, "reason": "CERT_HAS_EXPIRED"},
        ),
        ("node", "{ mTLSValid: true }\n", {"mTLSValid": True}),
        ("python", '{"success": true}\n', {"success": True}),
        ("curl", "<html>", None),
    ],
)
def test_parse_body_reads_every_output_form(client: str, stdout: str, body: object) -> None:
    assert verdicts.parse_body(client, stdout) == body


def test_timeout_and_unsupported_come_from_the_exit_status() -> None:
    assert decide(Evidence("curl", 124, "", "")) == "timeout"
    assert decide(Evidence("node", 137, "", "")) == "timeout"
    assert decide(Evidence("python", 127, "", "")) == "unsupported"


def test_an_unparsable_success_is_a_harness_error_not_a_pass() -> None:
    assert decide(Evidence("curl", 0, "not json", "")) == "harness-error:unparsable-body"


def test_a_wire_alert_decides_between_alert_and_reset() -> None:
    reset = "curl: (56) OpenSSL SSL_read: Connection reset by peer, errno 104\n"
    assert decide(Evidence("curl", 56, "", reset)) == "server-rejected:closed"
    with_wire = Evidence("curl", 56, "", reset, wire_alerts=[("server", "certificate required")])
    assert decide(with_wire) == "server-rejected:certificate_required"


def test_curls_expired_alert_sentence_is_the_servers_alert() -> None:
    # curl's own verify succeeded, so the 60 names the certificate_expired alert.
    stderr = "curl: (60) SSL certificate verification failed\nMore details here...\n"
    assert decide(Evidence("curl", 60, "", stderr)) == "server-rejected:certificate_expired"
    problem = "curl: (60) SSL certificate problem: certificate has expired\n"
    assert decide(Evidence("curl", 60, "", problem)) == "client-rejected:expired"
