"""Parity: in report mode the Python server's body equals the Node server's, byte for byte.

For every report-mode scenario whose expectation is the same for both servers, each
client (and TLS version) is run against the Node and the Python server, and what the
client printed must be identical. Scenarios where the catalogue documents a stack
difference (non-ca-issuer: Node's UNSPECIFIED) are compared on that documented
difference instead, and so are cells where no body comes back (a client that cannot
load its certificate, one that refuses to renegotiate): each side must end as its
expectation says. A cell one of the two servers cannot run (Node has no CA-name
setting) is skipped with that server's reason.
"""

from __future__ import annotations

import pytest

from harness import registry
from harness.cells import plan
from harness.pytest_plugin import Session
from harness.runner import Runner
from harness.scenarios import CATALOGUE, TLS_VERSIONS

pytestmark = pytest.mark.docker

REGISTRY = registry.default()
CELLS = {cell.id: cell for cell in plan(REGISTRY, servers=["node", "python"])}
REPORT_MODE = [
    s for s in CATALOGUE if not s.server.require and (s.expected == "ok" or s.expected.startswith("reported:"))
]
CASES = [
    pytest.param(s, client, tls, id=f"{client}-client--{s.id}--tls{tls}")
    for s in REPORT_MODE
    for client in REGISTRY.clients
    for tls in TLS_VERSIONS
]


@pytest.fixture(scope="module")
def parity_runner(harness: Session) -> Runner:
    """Pods of its own: the matrix's runner is busy with the same cells in the background,
    and two cells at once on one server process would mix their log lines."""
    return Runner(harness.run, harness.registry, purpose="parity")


@pytest.mark.parametrize(("scenario", "client", "tls"), CASES)
def test_python_body_equals_node_body(parity_runner: Runner, scenario, client: str, tls: str) -> None:  # type: ignore[no-untyped-def]
    node = parity_runner.run_cell(CELLS[f"node-server--{client}-client--{scenario.id}--tls{tls}"])
    python = parity_runner.run_cell(CELLS[f"python-server--{client}-client--{scenario.id}--tls{tls}"])
    for side in (node, python):
        if side.status == "unsupported":
            pytest.skip(side.reason)
    same = (node.expected, node.expected_native) == (python.expected, python.expected_native)
    if same and node.exit_code == python.exit_code == 0:
        assert python.stdout == node.stdout, node.explain() + "\n" + python.explain()
    else:
        # A documented stack difference: each side must print its own expectation.
        assert node.passed and python.passed, node.explain() + "\n" + python.explain()
