"""The implementations: which image each is, and how its server and client are invoked.

Every server image has ``server-mtls`` on PATH and every client image ``request-mtls``
(images/CONTRACT.md). curl runs the tutorial's commands verbatim; the Node client runs
the tutorial's ``request.js`` when it has no certificate and ``request-mtls.js`` when it
has one, exactly as the tutorial does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.errors import UsageError
from harness.scenarios import ClientSide, ServerSide

SERVERS = ("node", "python")
CLIENTS = ("curl", "node", "python")
NODE_WORKDIR = "/opt/mtls"
DEFAULT_PORT = 9443

#: Maps a path relative to the certificates folder to its path inside a container.
PathIn = Callable[[str], str]


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    workdir: str | None = None

    def display(self) -> str:
        return " ".join(self.argv)


def server_command(impl: str, side: ServerSide, tls_max: str | None, port: int, path: PathIn) -> Command:
    """``server-mtls`` with the common flags (SPEC §6), the same for every server image."""
    if impl not in SERVERS:
        raise UsageError(f"unknown server implementation {impl!r}: choose from {', '.join(SERVERS)}")
    argv = ["server-mtls", "--cert", path(side.cert), "--key", path(side.key)]
    if side.root_ca:
        argv += ["--root-ca", path(side.root_ca)]
    if side.require:
        argv += ["--require"]
    if side.crl:
        argv += ["--crl", path(side.crl)]
    if tls_max:
        argv += ["--tls-max", tls_max]
    if port != DEFAULT_PORT:
        argv += ["--port", str(port)]
    return Command(tuple(argv))


def client_command(impl: str, side: ClientSide, url: str, path: PathIn) -> Command:
    if impl == "curl":
        argv = ["curl"]
        if side.root_ca:
            argv += ["--cacert", path(side.root_ca)]
        if side.cert and side.key:
            argv += ["--key", path(side.key), "--cert", path(side.cert)]
        return Command((*argv, url))
    if impl == "node":
        if side.cert and side.key:
            argv = ["node", "request-mtls.js", "--key", path(side.key), "--cert", path(side.cert)]
        else:
            argv = ["node", "request.js"]
        if side.root_ca:
            argv += ["--root-ca", path(side.root_ca)]
        return Command((*argv, "--url", url), NODE_WORKDIR)
    if impl == "python":
        argv = ["request-mtls"]
        if side.cert and side.key:
            argv += ["--key", path(side.key), "--cert", path(side.cert)]
        if side.root_ca:
            argv += ["--root-ca", path(side.root_ca)]
        return Command((*argv, "--url", url))
    raise UsageError(f"unknown client implementation {impl!r}: choose from {', '.join(CLIENTS)}")


def check(kind: str, names: Iterable[str], known: tuple[str, ...]) -> list[str]:
    """``names`` deduplicated, or a UsageError naming the first unknown one."""
    chosen = list(dict.fromkeys(names))
    for name in chosen:
        if name not in known:
            raise UsageError(f"unknown {kind} implementation {name!r}: choose from {', '.join(known)}")
    return chosen or list(known)
