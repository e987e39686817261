"""The tutorial's transcript, reproduced by containers, line for line.

Each server is started the way the tutorial starts it (its own pod, port 9443); each
client command runs in its own container inside that pod, with the tutorial's paths
mapped to /certs. Every server that reports OpenSSL's names (manifest
``native_names = "openssl"``: Node, and the Python server in its place) runs the same
transcript, and its bodies must be byte-identical to the tutorial's. The commands are
the tutorial's own text (harness.tutorial); tests/test_registry.py proves the manifests'
templates produce exactly them.
"""

from __future__ import annotations

import time

import pytest

from harness import registry
from harness.pytest_plugin import Session
from harness.scenarios import BY_ID
from harness.tutorial import LISTENING, TRANSCRIPT, ServerRun, Step, in_container
from harness.verdicts import Evidence, decide

pytestmark = pytest.mark.docker

REGISTRY = registry.default()
BYTE_FOR_BYTE = [name for name in REGISTRY.servers if REGISTRY.server(name).native_names == "openssl"]
CASES = [
    pytest.param(server, run, step, id=f"{server}-server--{step.client}-client--{step.id}--{run.setup}")
    for server in BYTE_FOR_BYTE
    for run in TRANSCRIPT
    for step in run.steps
]


def start(harness: Session, server: str, run: ServerRun):  # type: ignore[no-untyped-def]
    pod = harness.run.pod(server, purpose=f"tutorial-{run.setup}")
    existing = getattr(pod, "tutorial_server", None)
    if existing is None:
        side = BY_ID[run.steps[0].id].server
        argv, workdir = REGISTRY.server_command(server, side, None, None, "../{}".format, tutorial=True)
        ready = REGISTRY.server(server).ready
        existing = pod.start_server(
            f"tutorial-{server}-{run.setup}", in_container(argv), 9443, workdir=workdir, ready_text=ready
        )
        pod.tutorial_server = existing  # type: ignore[attr-defined]
    return pod, existing


@pytest.mark.parametrize(("server", "run", "step"), CASES)
def test_transcript(harness: Session, server: str, run: ServerRun, step: Step) -> None:
    pod, process = start(harness, server, run)
    assert process.log_text().splitlines()[0] == LISTENING
    result = pod.exec(step.client, in_container(step.argv), timeout_s=20, workdir=REGISTRY.client(step.client).workdir)
    stdout = result.stdout.decode(errors="replace")
    assert (result.exit_code, stdout) == (0, step.output + "\n"), (
        f"{' '.join(step.argv)} against {server} server ({run.setup}):\n"
        f"  expected exit 0 and {step.output!r}\n"
        f"  got exit {result.exit_code} and {stdout!r}\n"
        f"  stderr: {result.stderr.decode(errors='replace')[-600:]}\n"
        f"  server log: {process.log_text()[-600:]}"
    )


CLASS_FOR_CLASS = [
    pytest.param(server, run, step, id=f"{server}-server--{step.client}-client--{step.id}--{run.setup}")
    for server in REGISTRY.servers
    if server not in BYTE_FOR_BYTE
    for run in TRANSCRIPT
    for step in run.steps
]


@pytest.mark.parametrize(("server", "run", "step"), CLASS_FOR_CLASS)
def test_transcript_class_for_class(harness: Session, server: str, run: ServerRun, step: Step) -> None:
    """Every other server, started as the tutorial starts its server (its contract command,
    port 9443) and asked by the tutorial's own client commands: the verdict class of each
    step is the one the catalogue and the manifests expect (the words are the stack's own)."""
    pod, process = start(harness, server, run)
    offset = process.log_size()
    result = pod.exec(step.client, in_container(step.argv), timeout_s=20, workdir=REGISTRY.client(step.client).workdir)
    time.sleep(0.2)  # the server logs its verdict of the connection as it closes
    evidence = Evidence(
        result.exit_code,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
        process.log_text()[offset:],  # some servers say why only in their log (lighttpd with wolfSSL)
    )
    decision = decide(evidence, REGISTRY.client(step.client), REGISTRY.server(server))
    expected = REGISTRY.expectation(server, step.client, BY_ID[step.id], "1.3")
    assert decision.verdict == expected.verdict, (
        f"{' '.join(step.argv)} against the {server} server ({run.setup}): expected {expected.verdict}, "
        f"observed {decision.verdict} ({decision.native})\n  server log: {process.log_text()[-600:]}"
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
    process = pod.start_server("tutorial-one-way", argv, 8443, workdir=REGISTRY.server("node").workdir)
    assert process.log_text().splitlines()[0] == "Example app listening at https://localhost:8443"
    result = pod.exec(
        "curl",
        in_container(("curl", "--cacert", "../tls-certs/root-ca-cert.pem", "https://localhost:8443")),
        timeout_s=20,
    )
    assert (result.exit_code, result.stdout) == (0, b'{"success": true}\n'), result.stderr.decode(errors="replace")
