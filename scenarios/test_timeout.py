"""A peer that accepts TCP and never answers ends in ``timeout``, and the run goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import engine, registry
from harness.pytest_plugin import Session
from harness.scenarios import ClientSide
from harness.verdicts import Evidence, decide

pytestmark = pytest.mark.docker

SILENT = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
print("silent peer listening at", sys.argv[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
"""


REGISTRY = registry.default()


@pytest.mark.parametrize("client", REGISTRY.clients)
def test_silent_peer_is_a_timeout(harness: Session, client: str) -> None:
    pod = harness.run.pod("python", purpose="silent-peer")
    if not getattr(pod, "silent", None):
        pod.silent = pod.start_server("silent-peer", ["python3", "-c", SILENT, "9443"], 9443)  # type: ignore[attr-defined]
    side = ClientSide(root_ca="tls-certs/root-ca-cert.pem")
    argv, workdir = REGISTRY.client_command(client, side, "https://localhost:9443", "/certs/{}".format)
    result = pod.exec(client, argv, timeout_s=3, workdir=workdir)
    evidence = Evidence(result.exit_code, result.stdout.decode(), result.stderr.decode())
    verdict = decide(evidence, REGISTRY.client(client), REGISTRY.server("python")).verdict
    assert verdict == "timeout", (result.exit_code, result.stderr[-300:])


def test_a_paused_server_costs_each_cell_its_limit_and_the_run_finishes(tmp_path: Path) -> None:
    """``docker pause`` of a server container (a hung server): a cell on a server process
    already running ends in ``timeout`` at the client's limit, one whose process cannot
    start ends in ``timeout`` at the start limit, and the run goes on to write its results."""
    options = engine.Options(
        servers=("python",),
        clients=("curl",),
        scenarios=("trusted-client", "no-client-cert"),
        tls=("1.3",),
        out=tmp_path / "out",
        jobs=2,
    )
    run = engine.Engine(options, say=lambda _line: None)
    with run:
        first = [c for c in run.cells if c.scenario.id == "trusted-client"]
        run.run_cells(first)
        assert run.results[first[0].id].passed
        assert run.run is not None
        pod = run.run.pod("python", "matrix")
        pod.server.pause()
        try:
            run.run_cells(run.cells)
        finally:
            pod.server.unpause()
        document = run.write()
    assert document is not None
    observed = {c["scenario"]: (c["observed"], c["native"]) for c in document["cells"]}
    assert observed["trusted-client"][0] == "timeout"
    assert observed["no-client-cert"][0] == "timeout" and "paused" in observed["no-client-cert"][1]
