"""A peer that accepts TCP and never answers ends in ``timeout``, and the run goes on."""

from __future__ import annotations

import pytest

from harness import registry
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
