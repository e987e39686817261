"""Wire assertions (SPEC §9): what the handshake shows, captured and decrypted.

The tutorial's point about the no-certificate failure is on the wire: the server sent a
CertificateRequest and the client answered with a Certificate message holding zero
certificates. These cells run with the capture sidecar and assert that, in TLS 1.2
(cleartext) and TLS 1.3 (decrypted with the client's key log), for every server and
client, plus the trusted client's two certificates, the CA names of the
CertificateRequest, and the alert (or its absence) of each require-mode rejection; and,
for every client, the production scenarios whose point is on the wire: the names a
CertificateRequest lists (one unrelated CA, or none) and whether the client sent its
chain anyway, and a certificate asked for only after the handshake (--auth-path); and,
with curl, the size of a CertificateRequest too large for its length fields.
"""

from __future__ import annotations

import pytest

from harness import registry
from harness.cells import plan
from harness.pytest_plugin import Session
from harness.results import CellResult

pytestmark = [pytest.mark.docker, pytest.mark.pcap]

ALL_CLIENTS = ("no-client-cert", "trusted-client", "ca-names-mismatch", "no-ca-names", "per-path-client-auth")
CURL_ONLY = (
    "trusted-ca-no-client-cert",
    "require-no-client-cert",
    "require-untrusted-client-ca",
    "require-expired-client-cert",
    "huge-ca-list",
)
REGISTRY = registry.default()
CELLS = [
    cell
    for cell in plan(REGISTRY, scenario_ids=ALL_CLIENTS + CURL_ONLY)
    if not cell.why_unsupported and (cell.scenario.id in ALL_CLIENTS or cell.client == "curl")
]


PARAMS = [
    pytest.param(
        cell, id=cell.id, marks=[pytest.mark.skip(reason=unseen)] if (unseen := REGISTRY.wire_unseen(cell)) else []
    )
    for cell in CELLS
]


@pytest.fixture(scope="module")
def wire_results(harness: Session, request: pytest.FixtureRequest) -> dict[str, CellResult]:
    """The selected wire cells, run together the way ``matrix --capture`` runs them: in
    parallel, each pod's capture cut per cell and inspected in one tshark pass."""
    wanted = {
        item.callspec.params["wire_cell"].id
        for item in request.session.items
        if getattr(item, "callspec", None) is not None and "wire_cell" in item.callspec.params
    }
    cells = [c for c in CELLS if c.id in wanted and not REGISTRY.wire_unseen(c)]
    return harness.wire_runner().run_cells(cells, harness.engine.options.jobs)


@pytest.mark.parametrize("wire_cell", PARAMS)
def test_wire(wire_results: dict[str, CellResult], wire_cell) -> None:  # type: ignore[no-untyped-def]
    cell = wire_cell
    result = wire_results[cell.id]
    if result.status == "unsupported":  # the server said at start it cannot (exit 127)
        pytest.skip(result.reason)
    assert result.wire is not None, result.explain()
    if cell.expected.wire == "no-server-hello":  # the stack's rule: no handshake at all
        assert result.wire["tls_version"] is None, result.explain()
    else:
        assert result.wire["tls_version"] == cell.tls, result.explain()
    assert result.passed, result.explain()
