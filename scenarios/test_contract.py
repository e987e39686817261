"""images/CONTRACT.md, checked against the images themselves."""

from __future__ import annotations

import os

import pytest

from harness import registry
from harness.pytest_plugin import Session

pytestmark = pytest.mark.docker

REGISTRY = registry.default()
CERT = "/certs/tls-certs/localhost-server-cert.pem"
KEY = "/certs/tls-certs/localhost-server-key.pem"
CLIENT = [
    "--key",
    "/certs/alternate-tls-certs/localhost-client-key.pem",
    "--cert",
    "/certs/alternate-tls-certs/localhost-client-chain.pem",
]


@pytest.mark.parametrize("server", REGISTRY.servers)
def test_server_flags(harness: Session, server: str) -> None:
    pod = harness.run.pod(server, purpose="contract")  # its own container: the server's view of /certs
    unknown = pod.exec_in_server(["server-mtls", "--cert", CERT, "--key", KEY, "--bogus"], timeout_s=20)
    assert unknown.exit_code == 2 and b"bogus" in unknown.stderr, unknown  # named (Go's flag package says -bogus)
    missing = pod.exec_in_server(["server-mtls", "--key", KEY], timeout_s=20)
    assert missing.exit_code == 1 and b"--cert" in missing.stderr, missing
    unreadable = pod.exec_in_server(["server-mtls", "--cert", "/certs/none.pem", "--key", KEY], timeout_s=20)
    assert unreadable.exit_code == 2 and b"/certs/none.pem" in unreadable.stderr, unreadable


@pytest.mark.parametrize("client", REGISTRY.clients)
def test_every_client_image_has_request_mtls(harness: Session, client: str) -> None:
    pod = harness.run.pod(REGISTRY.servers[0], purpose="contract-clients")
    if not getattr(pod, "contract_server", None):
        pod.contract_server = pod.start_server(  # type: ignore[attr-defined]
            "contract",
            ["server-mtls", "--cert", CERT, "--key", KEY, "--root-ca", "/certs/alternate-tls-certs/root-ca-cert.pem"],
            9443,
            ready_text=REGISTRY.server(REGISTRY.servers[0]).ready,
        )
    ok = pod.exec(client, ["request-mtls", *CLIENT, "--root-ca", "/certs/tls-certs/root-ca-cert.pem"], timeout_s=20)
    assert ok.exit_code == 0, ok.stderr
    assert b"mTLSValid" in ok.stdout and b"true" in ok.stdout
    bad = pod.exec(client, ["request-mtls", "--bogus"], timeout_s=20)
    assert bad.exit_code == 2, bad.stderr
    half = pod.exec(client, ["request-mtls", "--cert", "/certs/x.pem"], timeout_s=20)
    assert half.exit_code == 1 and b"--key" in half.stderr


def test_each_container_sees_only_the_keys_of_its_role_and_needs_no_capability(harness: Session) -> None:
    pod = harness.run.pod(REGISTRY.servers[0], purpose="privilege")
    client = REGISTRY.clients[0]
    server_key = "/certs/tls-certs/localhost-server-key.pem"
    client_key = "/certs/alternate-tls-certs/localhost-client-key.pem"
    stolen = pod.exec(client, ["cat", server_key], timeout_s=20)
    assert stolen.exit_code != 0 and b"PRIVATE KEY" not in stolen.stdout
    own = pod.exec(client, ["cat", client_key], timeout_s=20)
    assert own.exit_code == 0 and b"PRIVATE KEY" in own.stdout
    listing = pod.exec(client, ["sh", "-c", "find /certs /out -name '*-key.pem'; echo $(ls /out)"], timeout_s=20)
    *keys, out = listing.stdout.decode().strip().splitlines()
    assert keys and all(k.startswith(("/certs/alternate-tls-certs/", "/certs/variants/client-")) for k in keys), keys
    assert out.split() == ["agent", "cells"]  # of the run folder, only its cells (and its agent)
    server_view = pod.exec_in_server(["sh", "-c", f"cat {server_key} >/dev/null && ! cat {client_key}"], timeout_s=20)
    assert server_view.exit_code == 0, server_view.stderr
    # Nothing is added, except what a server's manifest asks for to drop root (Apache's
    # SETUID/SETGID, registry.DROPPING_CAPABILITIES), and only when the harness is root.
    allowed = set(REGISTRY.server(pod.impl).capabilities) if os.getuid() == 0 else set()
    for container, may in ((pod.server, allowed), (pod.client(client), set())):
        container.reload()
        added = set(container.attrs["HostConfig"].get("CapAdd") or [])
        assert {c.removeprefix("CAP_") for c in added} <= may, added
        assert not container.attrs["HostConfig"].get("Privileged")
        assert container.attrs["HostConfig"].get("CapDrop") == ["ALL"]
