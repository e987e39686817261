"""images/CONTRACT.md, checked against the images themselves."""

from __future__ import annotations

import pytest

from harness import impls
from harness.pytest_plugin import Session

pytestmark = pytest.mark.docker

CERT = "/certs/tls-certs/localhost-server-cert.pem"
KEY = "/certs/tls-certs/localhost-server-key.pem"
CLIENT = [
    "--key",
    "/certs/alternate-tls-certs/localhost-client-key.pem",
    "--cert",
    "/certs/alternate-tls-certs/localhost-client-chain.pem",
]


@pytest.mark.parametrize("server", impls.SERVERS)
def test_server_flags(harness: Session, server: str) -> None:
    pod = harness.run.pod(server, purpose="contract")
    unknown = pod.exec(server, ["server-mtls", "--cert", CERT, "--key", KEY, "--bogus"], timeout_s=20)
    assert unknown.exit_code == 2 and b"--bogus" in unknown.stderr
    missing = pod.exec(server, ["server-mtls", "--key", KEY], timeout_s=20)
    assert missing.exit_code == 1 and b"--cert" in missing.stderr
    unreadable = pod.exec(server, ["server-mtls", "--cert", "/certs/none.pem", "--key", KEY], timeout_s=20)
    assert unreadable.exit_code == 2 and b"/certs/none.pem" in unreadable.stderr


@pytest.mark.parametrize("client", impls.CLIENTS)
def test_every_client_image_has_request_mtls(harness: Session, client: str) -> None:
    pod = harness.run.pod("node", purpose="contract-clients")
    if not getattr(pod, "contract_server", None):
        pod.contract_server = pod.start_server(  # type: ignore[attr-defined]
            "contract",
            ["server-mtls", "--cert", CERT, "--key", KEY, "--root-ca", "/certs/alternate-tls-certs/root-ca-cert.pem"],
            9443,
        )
    ok = pod.exec(client, ["request-mtls", *CLIENT, "--root-ca", "/certs/tls-certs/root-ca-cert.pem"], timeout_s=20)
    assert ok.exit_code == 0, ok.stderr
    assert b"mTLSValid" in ok.stdout and b"true" in ok.stdout
    bad = pod.exec(client, ["request-mtls", "--bogus"], timeout_s=20)
    assert bad.exit_code == 2, bad.stderr
    half = pod.exec(client, ["request-mtls", "--cert", "/certs/x.pem"], timeout_s=20)
    assert half.exit_code == 1 and b"--key" in half.stderr
