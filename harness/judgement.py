"""Judgement of one cell (SPEC §7, §9): its verdict from the stack's own evidence, and
what its capture shows against what the scenario says the wire must show.

Pure: no Docker, no files. The runner gathers the evidence (exit status, output, the
server's log, the captured connection) and calls ``judge``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import capture
from harness.registry import Registry
from harness.results import CellResult
from harness.scenarios import Scenario, Wire
from harness.verdicts import Evidence, decide


def judge(
    outcome: CellResult,
    registry: Registry,
    wire: dict[str, Any] | None,
    alerts: list[tuple[str, str]],
    check_wire: bool,
) -> None:
    """Decide ``outcome``'s verdict (with the wire's alerts when captured) and, when
    ``check_wire``, how its captured connection differs from the scenario's wire."""
    evidence = Evidence(outcome.exit_code, outcome.stdout, outcome.stderr, outcome.server_log, alerts)
    decision = decide(evidence, registry.client(outcome.cell.client), registry.server(outcome.cell.server))
    outcome.observed, outcome.native, outcome.decided_by = decision.verdict, decision.native, decision.rule
    if check_wire:
        outcome.wire = wire
        outcome.wire_problems = wire_mismatches(
            outcome.cell.scenario,
            outcome.expected,
            wire,
            override=outcome.cell.expected.wire,
            **registry.wire_view(outcome.cell),
        )


def chosen_connection(
    connections: Sequence[capture.Connection],
) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """The cell's connection: curl may try ::1 before 127.0.0.1, so the one that got a
    ServerHello counts. Returns its record and the alerts other than close_notify."""
    if not connections:
        return None, []
    chosen = next((c for c in reversed(connections) if c.tls_version), connections[-1])
    return chosen.record(), [(a.sender, a.description) for a in chosen.alerts if a.description != "close_notify"]


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
    # What the client sends is the scenario's where the cell ends as the scenario's default
    # says; a client that withholds its chain (the cell's expectation says no-cert) sends an
    # empty Certificate; for any other outcome the client's messages are not asserted.
    count, verify, after = (
        want.client_certificate_count,
        want.certificate_verify,
        want.certificate_request_after_handshake,
    )
    if expected != scenario.default(str(wire.get("tls_version") or ""))[0]:
        # Withheld: an empty Certificate, if the server asked at all (a server that could
        # not ask after the handshake leaves no Certificate message).
        withheld = expected == "reported:no-cert" and wire.get("certificate_request")
        count = 0 if count is not None and withheld else None
        verify = after = None
    if count is not None and wire.get("client_certificate_count") != count:
        problems.append(
            f"client Certificate message: expected {count} certificate(s), saw {wire.get('client_certificate_count')}"
        )
    if verify is not None and wire.get("certificate_verify") != verify:
        problems.append(f"CertificateVerify: expected {verify}, saw {wire.get('certificate_verify')}")
    if after is not None and bool(wire.get("certificate_request_after_handshake")) != after:
        asked_after = wire.get("certificate_request_after_handshake")
        problems.append(
            "the server should ask for the certificate after the handshake (a CertificateRequest after the "
            f"client's Finished); saw certificate_request_after_handshake={asked_after}"
        )
    unreadable = expected in ("client-error:decode-error", "client-error:message-too-large")
    if want.unreadable_request_bytes is not None and unreadable and wire.get("certificate_request"):
        size = wire.get("certificate_request_bytes") or 0
        if size < want.unreadable_request_bytes:
            problems.append(
                f"the CertificateRequest the client could not read should be at least "
                f"{want.unreadable_request_bytes} bytes; it was {size}"
            )
    listed = [str(name) for name in wire.get("certificate_request_cas") or []]
    for name in want.ca_names if ca_names else ():
        if not any(name in dn for dn in listed):
            problems.append(f"CertificateRequest should name {name!r}; it listed {listed}")
    if want.ca_names_count is not None and ca_names and len(listed) != want.ca_names_count:
        problems.append(f"CertificateRequest should list {want.ca_names_count} CA name(s); it listed {listed}")
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
