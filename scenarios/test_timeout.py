"""A peer that accepts TCP and never answers ends in ``timeout``, and the run goes on."""

from __future__ import annotations

import pytest

from harness.pytest_plugin import Session
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


@pytest.mark.parametrize("client", ["curl", "node", "python"])
def test_silent_peer_is_a_timeout(harness: Session, client: str) -> None:
    pod = harness.run.pod("python", purpose="silent-peer")
    if not getattr(pod, "silent", None):
        pod.silent = pod.start_server("silent-peer", ["python3", "-c", SILENT, "9443"], 9443)  # type: ignore[attr-defined]
    argv = {
        "curl": ["curl", "--cacert", "/certs/tls-certs/root-ca-cert.pem", "https://localhost:9443"],
        "node": [
            "node",
            "request.js",
            "--root-ca",
            "/certs/tls-certs/root-ca-cert.pem",
            "--url",
            "https://localhost:9443",
        ],
        "python": ["request-mtls", "--root-ca", "/certs/tls-certs/root-ca-cert.pem"],
    }[client]
    result = pod.exec(client, argv, timeout_s=3, workdir="/opt/mtls" if client == "node" else None)
    verdict = decide(Evidence(client, result.exit_code, result.stdout.decode(), result.stderr.decode()))
    assert verdict == "timeout", (result.exit_code, result.stderr[-300:])
