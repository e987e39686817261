"""The admission check of a user's own implementation (SPEC §13), and what ``impls`` lists.

Before any cell runs, an implementation added with ``--impl`` must show that its image
keeps the contract (images/CONTRACT.md), the way quic-interop-runner admits an image
only after an unknown test case makes it exit 127:

1. an unknown flag exits 2 (server and client);
2. every option its manifest declares unsupported exits 127;
3. the server says it listens (its manifest's ``ready`` text) with the tutorial's files;
4. the version probe answers (exit 0 and a line).

A failure is one line naming the rule that broke and what the image did instead.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.features import admission_ask
from harness.pods import Run, tail
from harness.registry import Registry
from harness.scenarios import (
    CLIENT_ROOT,
    SERVER_ROOT,
    TRUSTED_CLIENT,
    ClientSide,
    ServerSide,
)

UNKNOWN_FLAG = "--mtls-harness-admission-unknown-flag"
TIMEOUT_S = 20.0


class AdmissionError(HarnessError):
    """An implementation that does not keep the contract."""


def _refuse(name: str, rule: str, did: str) -> AdmissionError:
    return AdmissionError(f"{name} is not admitted: {rule}, but {did}")


def admit(run: Run, found: Registry, name: str, say: Any = print) -> None:
    """Run the admission checks of ``name`` in a pod of its own; raise AdmissionError on the first failure."""
    impl = found.get(name)
    pod = run.pod(name, purpose="admission")
    path = run.container_path

    def in_certs(relative: str) -> str:
        return path(run.certs_dir / relative)

    def execute(argv: tuple[str, ...], workdir: str | None) -> tuple[int, str]:
        result = pod.exec_in_server(argv, timeout_s=TIMEOUT_S, workdir=workdir)
        return result.exit_code, tail((result.stderr or result.stdout).decode(errors="replace"), 2)

    if impl.server is not None:
        argv, workdir = found.server_command(name, ServerSide(root_ca=CLIENT_ROOT), None, None, in_certs)
        code, said = execute((*argv, UNKNOWN_FLAG), workdir)
        if code != 2:
            raise _refuse(
                name,
                "its server must exit 2 on an unknown flag",
                f"`{argv[0]} … {UNKNOWN_FLAG}` exited {code} ({said})",
            )
        for feature, reason in impl.server.lacks.items():
            asked = admission_ask(feature)
            if asked is None:  # a fact about the stack (keylog, ca-names), not an option to ask for
                continue
            side, tls = asked
            argv, workdir = found.server_command(name, side, tls, None, in_certs)
            code, said = execute(argv, workdir)
            if code != 127:
                raise _refuse(
                    name,
                    f"its manifest says the server cannot do {feature} ({reason}), so asking for it must exit 127",
                    f"`{' '.join(argv)}` exited {code} ({said})",
                )
        argv, workdir = found.server_command(name, ServerSide(root_ca=CLIENT_ROOT), None, None, in_certs)
        try:
            pod.start_server(f"admission-{name}", argv, 9443, workdir=workdir, ready_text=impl.server.ready)
        except HarnessError as exc:
            raise _refuse(
                name, f"its server must print {impl.server.ready!r} once listening", str(exc).splitlines()[0]
            ) from None
    if impl.client is not None:
        client_side = ClientSide(TRUSTED_CLIENT.cert, TRUSTED_CLIENT.key, SERVER_ROOT)
        argv, workdir = found.client_command(name, client_side, "https://localhost:9443", in_certs)
        result = pod.exec(name, (*argv, UNKNOWN_FLAG), timeout_s=TIMEOUT_S, workdir=workdir)
        code, said = result.exit_code, tail((result.stderr or result.stdout).decode(errors="replace"), 2)
        if code != 2:
            raise _refuse(
                name,
                "its client must exit 2 on an unknown flag",
                f"`{argv[0]} … {UNKNOWN_FLAG}` exited {code} ({said})",
            )
    result = pod.exec_in_server(impl.version_argv, timeout_s=TIMEOUT_S)
    if result.exit_code != 0 or not result.stdout.strip():
        said = tail(result.stderr.decode(errors="replace"), 2)
        raise _refuse(
            name,
            "its version probe must exit 0 and print a line",
            f"`{' '.join(impl.version_argv)}` exited {result.exit_code} ({said})",
        )
    say(f"admitted {name}: unknown flag -> 2, unsupported options -> 127, server listens, version answers")


def ask_versions(
    run: Run, found: Registry, names: Iterable[str], present: Callable[[str], bool] | None = None
) -> dict[str, str]:
    """Each implementation's version, asked of its own image (its manifest's probe), four
    at a time. A probe never fails the run: what went wrong is said in place of the version."""

    def ask(name: str) -> tuple[str, str]:
        impl = found.get(name)
        if present is not None and not present(impl.image):
            return name, "image not built (mtls-harness images)"
        try:
            result = run.probe(name, impl.version_argv, timeout_s=TIMEOUT_S)
        except Exception as exc:  # a version probe never fails the run
            return name, f"unknown ({type(exc).__name__}: {str(exc)[:120]})"
        lines = result.stdout.decode(errors="replace").strip().splitlines()
        if result.exit_code == 0 and lines:
            return name, lines[0]
        return name, f"unknown (exit {result.exit_code}: {tail(result.stderr.decode(errors='replace'))})"

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(ask, list(names)))


def versions(found: Registry) -> dict[str, str]:
    """Every implementation's version for ``mtls-harness impls``; "image not built" where it is missing."""
    from harness import images

    try:
        client = images.connect()
    except HarnessError as exc:
        return {impl.name: f"unknown ({exc})" for impl in found.impls}
    with tempfile.TemporaryDirectory(prefix="mtls-harness-impls-") as tmp:
        run = Run(client, Path(tmp), Path(tmp), images=found.images(), capabilities=found.capabilities())
        try:
            return ask_versions(run, found, [impl.name for impl in found.impls], lambda image: _present(client, image))
        finally:
            run.close()


def _present(client: Any, image: str) -> bool:
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(image)
        return True
    return False


def listing(found: Registry, versions: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What ``mtls-harness impls`` shows for each implementation."""
    return {
        impl.name: {
            **impl.record(impl.image, versions.get(impl.name, "not asked")),
            "folder": str(impl.folder),
            "differences": len(impl.expectations),
        }
        for impl in found.impls
    }
