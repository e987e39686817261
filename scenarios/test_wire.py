"""Wire assertions (SPEC §9): what the handshake shows, captured and decrypted.

The tutorial's point about the no-certificate failure is on the wire: the server sent a
CertificateRequest and the client answered with a Certificate message holding zero
certificates. These cells run with the capture sidecar and assert that, in TLS 1.2
(cleartext) and TLS 1.3 (decrypted with the client's key log), for every server and
client, plus the trusted client's two certificates, the CA names of the
CertificateRequest, and the alert (or its absence) of each require-mode rejection.
"""

from __future__ import annotations

import pytest

from harness import registry
from harness.matrix import plan
from harness.pytest_plugin import Session

pytestmark = [pytest.mark.docker, pytest.mark.pcap]

ALL_CLIENTS = ("no-client-cert", "trusted-client")
CURL_ONLY = (
    "trusted-ca-no-client-cert",
    "require-no-client-cert",
    "require-untrusted-client-ca",
    "require-expired-client-cert",
)
REGISTRY = registry.default()
CELLS = [
    cell
    for cell in plan(REGISTRY, scenario_ids=ALL_CLIENTS + CURL_ONLY)
    if not cell.unsupported and (cell.scenario.id in ALL_CLIENTS or cell.client == "curl")
]


PARAMS = [
    pytest.param(
        cell, id=cell.id, marks=[pytest.mark.skip(reason=unseen)] if (unseen := REGISTRY.wire_unseen(cell)) else []
    )
    for cell in CELLS
]


@pytest.mark.parametrize("wire_cell", PARAMS)
def test_wire(harness: Session, wire_cell) -> None:  # type: ignore[no-untyped-def]
    cell = wire_cell
    result = harness.wire_runner().run_cell(cell)
    assert result.wire is not None, result.explain()
    assert result.wire["tls_version"] == cell.tls, result.explain()
    assert result.passed, result.explain()
