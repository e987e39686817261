"""The verdict engine and every stack's error map, on real outputs recorded from the stacks.

Each recording (``images/<client>/recorded/<cell-id>.json``, or ``<cell-id>.<verdict>.json``
for another outcome of a declared race, ``:`` written ``=``) holds what a client printed
and what the server logged in one real cell; the verdict it must map to comes from the
catalogue and the manifests (the spec and the stacks' rules), not from the run that
recorded it. ``tests/tools/record_outputs.py`` writes them from a finished run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import registry
from harness.cells import plan
from harness.verdicts import Evidence, decide, parse_body

REGISTRY = registry.default()
# Every generation's cells: a recording of a Debian 13 client (node@13) is judged by its
# own manifest table.
CELLS = {cell.id: cell for cell in plan(REGISTRY, generations=REGISTRY.generations)}
# One recorded/ folder per stack folder: a later generation (name@13) shares its folder.
RECORDINGS = sorted({p for impl in REGISTRY.impls for p in impl.recorded_dir.glob("*.json")})


def test_every_client_has_recordings_of_every_verdict_kind() -> None:
    loaded = [json.loads(p.read_text()) for p in RECORDINGS]
    recorded = {CELLS[r["cell"]].client for r in loaded}
    assert {"curl", "node", "python"} <= recorded
    kinds = {CELLS[r["cell"]].expected.verdict.split(":")[0] for r in loaded}
    assert kinds >= {"ok", "reported", "server-rejected", "client-rejected", "client-error"}


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_recorded_output_maps_to_the_specified_verdict(path: Path) -> None:
    recording = json.loads(path.read_text())
    cell = CELLS[recording["cell"]]
    assert path.parent.parent.name == cell.client.split("@", 1)[0], "a recording lives beside its client's manifest"
    evidence = Evidence(recording["exit_code"], recording["stdout"], recording["stderr"], recording["server_log"])
    decision = decide(evidence, REGISTRY.client(cell.client), REGISTRY.server(cell.server))
    # <cell-id>.json is the expected outcome; <cell-id>.<verdict, ':' as '='>.json another
    # outcome of a race the cell's stack declares (SPEC §14), and it must be one.
    outcome = path.name.removesuffix(".json")[len(recording["cell"]) + 1 :].replace("=", ":")
    if outcome:
        assert outcome in cell.expected.also, f"{outcome} is no declared outcome of {cell.id}: {cell.expected}"
        assert decision.verdict == outcome, (decision, outcome)
        return
    assert decision.verdict == cell.expected.verdict, (decision, cell.expected)
    if cell.expected.native is not None:
        assert decision.native == cell.expected.native


NODE = REGISTRY.client("node")
PYTHON = REGISTRY.client("python")
CURL = REGISTRY.client("curl")
SERVER = REGISTRY.server("python")


@pytest.mark.parametrize(
    ("prefixes", "stdout", "body"),
    [
        ((), '{"mTLSValid": true}\n', {"mTLSValid": True}),
        (
            ("Response: ",),
            'Response: {"mTLSValid":false,"reason":"UNABLE_TO_GET_ISSUER_CERT"}\n',
            {"mTLSValid": False, "reason": "UNABLE_TO_GET_ISSUER_CERT"},
        ),
        ((), "{ mTLSValid: false, reason: 'CERT_HAS_EXPIRED' }\n", {"mTLSValid": False, "reason": "CERT_HAS_EXPIRED"}),
        ((), "{ mTLSValid: true }\n", {"mTLSValid": True}),
        # Node's util.inspect switches to double quotes when the string holds a single quote.
        (
            (),
            '{ mTLSValid: false, reason: "The chain violates the signer\'s constraints." }\n',
            {"mTLSValid": False, "reason": "The chain violates the signer's constraints."},
        ),
        ((), "{ mTLSValid: false, reason: 'it\\'s, a: b' }\n", {"mTLSValid": False, "reason": "it's, a: b"}),
        ((), '{"success": true}\n', {"success": True}),
        ((), "<html>", None),
    ],
)
def test_parse_body_reads_every_output_form(prefixes: tuple[str, ...], stdout: str, body: object) -> None:
    assert parse_body(stdout, prefixes) == body


def test_timeout_and_unsupported_come_from_the_exit_status() -> None:
    assert decide(Evidence(124, "", ""), CURL, SERVER).verdict == "timeout"
    assert decide(Evidence(137, "", ""), NODE, SERVER).verdict == "timeout"
    assert decide(Evidence(127, "", "no CRL support"), PYTHON, SERVER).verdict == "unsupported"
    assert decide(Evidence(127, "", "sh: 1: curl: not found"), CURL, SERVER).verdict == "harness-error:client-missing"


def test_an_unparsable_success_is_a_harness_error_not_a_pass() -> None:
    assert decide(Evidence(0, "not json", ""), CURL, SERVER).verdict == "harness-error:unparsable-body"


def test_a_reason_no_rule_knows_is_a_harness_error_with_the_words_kept() -> None:
    decision = decide(Evidence(0, '{"mTLSValid": false, "reason": "SOMETHING_NEW"}', ""), CURL, SERVER)
    assert (decision.verdict, decision.native) == ("harness-error:unmapped-reason", "SOMETHING_NEW")


def test_no_cert_and_untrusted_share_a_name_and_the_server_log_tells_them_apart() -> None:
    body = '{"mTLSValid": false, "reason": "UNABLE_TO_GET_ISSUER_CERT"}'
    none = decide(Evidence(0, body, "", "handshake TLSv1.3 subject=none authorized=false"), CURL, SERVER)
    some = decide(Evidence(0, body, "", 'handshake TLSv1.3 subject="localhost.client" authorized=false'), CURL, SERVER)
    assert (none.verdict, some.verdict) == ("reported:no-cert", "reported:untrusted")
    assert none.native == some.native == "UNABLE_TO_GET_ISSUER_CERT"


def test_a_wire_alert_decides_between_alert_and_reset() -> None:
    reset = "curl: (56) OpenSSL SSL_read: Connection reset by peer, errno 104\n"
    assert decide(Evidence(56, "", reset), CURL, SERVER).verdict == "server-rejected:closed"
    with_wire = Evidence(56, "", reset, wire_alerts=[("server", "certificate required")])
    decision = decide(with_wire, CURL, SERVER)
    assert decision.verdict == "server-rejected:certificate_required"
    assert decision.native.startswith("56: OpenSSL SSL_read")


def test_curls_expired_alert_sentence_is_the_servers_alert() -> None:
    # curl's own verify succeeded, so the 60 names the certificate_expired alert.
    stderr = "curl: (60) SSL certificate verification failed\nMore details here...\n"
    assert decide(Evidence(60, "", stderr), CURL, SERVER).verdict == "server-rejected:certificate_expired"
    problem = "curl: (60) SSL certificate problem: certificate has expired\n"
    assert decide(Evidence(60, "", problem), CURL, SERVER).verdict == "client-rejected:expired"


def test_the_deciding_rule_is_named() -> None:
    stderr = (
        "   Error Code: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\nError Message: tlsv13 alert certificate required\n"
    )
    decision = decide(Evidence(1, "", stderr), NODE, SERVER)
    assert decision.verdict == "server-rejected:certificate_required"
    assert "rulesets/openssl.toml alerts" in decision.rule


# What Go 1.19.8's net/http returns when the server's close races its own readLoop
# (transport.go readLoopPeekFailLocked): the texts come from that source, the request-mtls
# program names a plain errors.New value "error". Issue 23 saw the first in a real run.
@pytest.mark.parametrize(
    ("message", "verdict"),
    [
        ("http: server closed idle connection", "server-rejected:closed"),
        (
            "readLoopPeekFailLocked: read tcp 127.0.0.1:40312->127.0.0.1:9443: read: connection reset by peer",
            "server-rejected:closed",
        ),
        ("readLoopPeekFailLocked: remote error: tls: certificate required", "server-rejected:certificate_required"),
        ("readLoopPeekFailLocked: remote error: tls: unknown certificate authority", "server-rejected:unknown_ca"),
    ],
)
def test_go_transports_own_race_on_a_servers_close_reads_as_that_close(message: str, verdict: str) -> None:
    go = REGISTRY.client("go")
    stderr = f"   Error Code: error\nError Message: {message}\n"
    assert decide(Evidence(1, "", stderr), go, SERVER).verdict == verdict


def test_an_output_no_rule_knows_is_unmapped_and_fails_its_cell() -> None:
    go = REGISTRY.client("go")
    decision = decide(Evidence(1, "", "   Error Code: error\nError Message: something new\n"), go, SERVER)
    assert decision.verdict == "client-error:unmapped"
