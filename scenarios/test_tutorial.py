"""The tutorial's transcript, reproduced by containers, line for line.

Each server is started the way the tutorial starts it (its own pod, port 9443); each
client command runs in its own container inside that pod, with the tutorial's paths
mapped to /certs. The Python server runs the same transcript in place of Node's: its
bodies must be byte-identical.
"""

from __future__ import annotations

import pytest

from harness.pytest_plugin import Session
from harness.tutorial import LISTENING, TRANSCRIPT, ServerRun, Step, as_server, in_container

pytestmark = pytest.mark.docker

NODE_WORKDIR = "/opt/mtls"
CASES = [
    pytest.param(server, run, step, id=f"{server}-server--{step.client}-client--{step.id}--{run.setup}")
    for server in ("node", "python")
    for run in TRANSCRIPT
    for step in run.steps
]


def start(harness: Session, server: str, run: ServerRun):  # type: ignore[no-untyped-def]
    pod = harness.run.pod(server, purpose=f"tutorial-{run.setup}")
    existing = getattr(pod, "tutorial_server", None)
    if existing is None:
        argv = in_container(as_server(server, run.argv))
        existing = pod.start_server(
            f"tutorial-{server}-{run.setup}", argv, 9443, workdir=NODE_WORKDIR if server == "node" else None
        )
        pod.tutorial_server = existing  # type: ignore[attr-defined]
    return pod, existing


@pytest.mark.parametrize(("server", "run", "step"), CASES)
def test_transcript(harness: Session, server: str, run: ServerRun, step: Step) -> None:
    pod, process = start(harness, server, run)
    assert process.log_text().splitlines()[0] == LISTENING
    result = pod.exec(
        step.client, in_container(step.argv), timeout_s=20, workdir=NODE_WORKDIR if step.client == "node" else None
    )
    stdout = result.stdout.decode(errors="replace")
    assert (result.exit_code, stdout) == (0, step.output + "\n"), (
        f"{' '.join(step.argv)} against {server} server ({run.setup}):\n"
        f"  expected exit 0 and {step.output!r}\n"
        f"  got exit {result.exit_code} and {stdout!r}\n"
        f"  stderr: {result.stderr.decode(errors='replace')[-600:]}\n"
        f"  server log: {process.log_text()[-600:]}"
    )


def test_one_way_server(harness: Session) -> None:
    """The tutorial's one-way server.js on 8443 answers curl with {"success": true}."""
    pod = harness.run.pod("node", purpose="tutorial-one-way")
    argv = in_container(
        (
            "node",
            "server.js",
            "--cert",
            "../tls-certs/localhost-server-cert.pem",
            "--key",
            "../tls-certs/localhost-server-key.pem",
        )
    )
    process = pod.start_server("tutorial-one-way", argv, 8443, workdir=NODE_WORKDIR)
    assert process.log_text().splitlines()[0] == "Example app listening at https://localhost:8443"
    result = pod.exec(
        "curl",
        in_container(("curl", "--cacert", "../tls-certs/root-ca-cert.pem", "https://localhost:8443")),
        timeout_s=20,
    )
    assert (result.exit_code, result.stdout) == (0, b'{"success": true}\n'), result.stderr.decode(errors="replace")
