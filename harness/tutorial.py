"""The tutorial's transcript as data: each server it starts and each command run
against it, with the exact output line the tutorial shows.

Commands keep the tutorial's relative paths (``../tls-certs/...``, run from
``docs/nodejs/``); ``in_container`` maps them onto the certificates mounted at
``/certs``. ``tests/test_tutorial_data.py`` checks every command and line against the
tutorial text itself, so this file cannot drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass

LISTENING = "Example mTLS app listening at https://localhost:9443"


@dataclass(frozen=True)
class Step:
    id: str  # the scenario this request exercises
    client: str  # implementation whose container runs it
    argv: tuple[str, ...]
    output: str  # the line the tutorial shows, without its newline


@dataclass(frozen=True)
class ServerRun:
    setup: str
    argv: tuple[str, ...]  # as the tutorial types it, from docs/nodejs
    steps: tuple[Step, ...]


SERVER_FLAGS = ("--cert", "../tls-certs/localhost-server-cert.pem", "--key", "../tls-certs/localhost-server-key.pem")
ROOT_CA_FLAG = ("--root-ca", "../alternate-tls-certs/root-ca-cert.pem")
CURL_CLIENT_CERT = (
    "--cacert",
    "../tls-certs/root-ca-cert.pem",
    "--key",
    "../alternate-tls-certs/localhost-client-key.pem",
    "--cert",
    "../alternate-tls-certs/localhost-client-chain.pem",
    "https://localhost:9443",
)

TRANSCRIPT = (
    ServerRun(
        "without-root-ca",
        ("node", "server-mtls.js", *SERVER_FLAGS),
        (
            Step(
                "no-client-cert",
                "curl",
                ("curl", "--cacert", "../tls-certs/root-ca-cert.pem", "https://localhost:9443"),
                '{"mTLSValid": false, "reason": "UNABLE_TO_GET_ISSUER_CERT"}',
            ),
            Step(
                "untrusted-client-ca",
                "curl",
                ("curl", *CURL_CLIENT_CERT),
                '{"mTLSValid": false, "reason": "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"}',
            ),
        ),
    ),
    ServerRun(
        "with-root-ca",
        ("node", "server-mtls.js", *SERVER_FLAGS, *ROOT_CA_FLAG),
        (
            Step("trusted-client", "curl", ("curl", *CURL_CLIENT_CERT), '{"mTLSValid": true}'),
            Step(
                "trusted-ca-no-client-cert",
                "node",
                ("node", "request.js", "--root-ca", "../tls-certs/root-ca-cert.pem", "--url", "https://localhost:9443"),
                'Response: {"mTLSValid":false,"reason":"UNABLE_TO_GET_ISSUER_CERT"}',
            ),
            Step(
                "trusted-client",
                "node",
                (
                    "node",
                    "request-mtls.js",
                    "--key",
                    "../alternate-tls-certs/localhost-client-key.pem",
                    "--cert",
                    "../alternate-tls-certs/localhost-client-chain.pem",
                    "--root-ca",
                    "../tls-certs/root-ca-cert.pem",
                ),
                "{ mTLSValid: true }",
            ),
        ),
    ),
)


def in_container(argv: tuple[str, ...], certs_mount: str = "/certs") -> tuple[str, ...]:
    """The tutorial's ``../tls-certs/x`` becomes ``/certs/tls-certs/x``."""
    return tuple(certs_mount + "/" + a[3:] if a.startswith("../") else a for a in argv)
