"""The Python server keeps serving after garbage, a half-open handshake and a stall."""

from __future__ import annotations

import pytest

from harness.pytest_plugin import Session

pytestmark = pytest.mark.docker

ABUSE = r"""
import socket, ssl, sys, requests
port = int(sys.argv[1])
def connect():
    return socket.create_connection(("localhost", port), timeout=5)
# 1. garbage bytes instead of a ClientHello
s = connect(); s.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256))); s.recv(100); s.close()
# 2. a handshake closed half-way: the first bytes of a ClientHello, then FIN
s = connect(); s.sendall(bytes.fromhex("160301020001")); s.close()
# 3. a client that connects and says nothing, still open during the next request
stalled = connect()
# 4. a valid request must still be answered
r = requests.get(f"https://localhost:{port}", cert=(sys.argv[2], sys.argv[3]), verify=sys.argv[4], timeout=10)
print(r.text, end="")
stalled.close()
"""


def test_python_server_survives_garbage_half_open_and_stall(harness: Session) -> None:
    pod = harness.run.pod("python", purpose="robustness")
    certs = "/certs"
    process = pod.start_server(
        "robustness",
        [
            "server-mtls",
            "--cert",
            f"{certs}/tls-certs/localhost-server-cert.pem",
            "--key",
            f"{certs}/tls-certs/localhost-server-key.pem",
            "--root-ca",
            f"{certs}/alternate-tls-certs/root-ca-cert.pem",
            "--port",
            "9443",
        ],
        9443,
    )
    result = pod.exec(
        "python",
        [
            "python3",
            "-c",
            ABUSE,
            "9443",
            f"{certs}/alternate-tls-certs/localhost-client-chain.pem",
            f"{certs}/alternate-tls-certs/localhost-client-key.pem",
            f"{certs}/tls-certs/root-ca-cert.pem",
        ],
        timeout_s=30,
    )
    assert (result.exit_code, result.stdout) == (0, b'{"mTLSValid": true}\n'), result.stderr.decode(errors="replace")
    log = process.log_text()
    assert log.count("handshake-failed") + log.count("connection-closed") >= 2, log
    assert process.running()
