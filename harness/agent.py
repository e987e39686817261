"""A client container's agent: runs each cell's client without a ``docker exec``.

A ``docker exec`` costs three Docker API calls and a runc setup per cell (about 90 ms on
a quiet 2-core machine, much more under load, and CPU the clients need). Instead each
client container runs one small bash loop, started once by a single ``docker exec``:

- the harness writes the cell's command as a short bash script into the agent's folder
  (``out/agents/<container>/``, mounted at ``/out/agent`` in that container only; it
  holds no key) and writes its id into the ``requests`` FIFO;
- the agent starts the script as a fresh process, in the background (cells of other
  server processes may run at the same time), with stdout and stderr to files;
- when the script ends, the agent writes "<id> <exit status>" into the ``done`` FIFO,
  which one reader thread of the harness dispatches to the waiting cell.

The script is what the ``docker exec`` path ran: ``timeout -k 2 LIMIT argv`` (exit 124
past the limit), then the capture marker. So a cell's client is the same fresh process
with the same arguments, environment and working folder either way; the parity test
(scenarios/test_parity.py) runs cells both ways and compares every verdict.

An image without bash (a user's own) never says "ready": its cells use ``docker exec``.

A client whose program is slow to start (an interpreter, a JVM) may declare a **batch
worker** in its manifest (``[client.batch]``, images/MANIFEST.md): one long-lived process
that speaks the same protocol in a folder of its own (``batch/`` beside the agent's), but
reads each request as a ``<id>.req`` file (``request_file``: the limit, working folder,
environment, capture marker and the one-shot argv, one item per line) and serves it
itself, with fresh TLS state and its own stdout, stderr and exit status (images/CONTRACT.md,
"Batch workers"). Only the matrix uses it (``Runner(batch=True)``); the tutorial, the
wire tests and ``--one-shot`` run every client as a fresh process, and
scenarios/test_one_shot_parity.py compares the two over every cell of each batch client.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

MOUNT = "/out/agent"
BATCH = "batch"  # the batch worker's folder, inside the agent's
READY_TIMEOUT_S = 10.0
# Past the cell's own limit (timeout -k 2 LIMIT): what the agent may take to answer.
GRACE_S = 10.0

SCRIPT = r"""#!/bin/bash
# mtls-harness agent (harness/agent.py): one fresh process per request, in the background.
dir=$1
exec 3<>"$dir/requests" 4<>"$dir/done" </dev/null
echo ready >&4
while read -r id <&3; do
    # The client gets neither FIFO (3<&- 4<&-): like a docker exec, it sees only its own output.
    { bash "$dir/$id.sh" 3<&- 4<&- >"$dir/$id.out" 2>"$dir/$id.err"; echo "$id $?" >&4; } &
done
"""


# How a batch worker is started (one docker exec, detached): the manifest's argv plus the
# folder; its own output goes to worker.log, and its end is said in ``done``. ``1<>``
# opens the FIFO without waiting for a reader.
BATCH_WRAPPER = 'dir=$1; shift; "$@" "$dir" </dev/null >>"$dir/worker.log" 2>&1; echo "exited $?" 1<>"$dir/done"'


def request_script(
    argv: Sequence[str],
    timeout_s: float,
    workdir: str | None,
    environment: dict[str, str] | None,
    marker: bytes | None,
    marker_port: int,
) -> str:
    """The bash script of one request: what ``docker exec`` would have run."""
    lines = ["set -u"]
    if workdir:
        lines.append(f"cd {shlex.quote(workdir)} || exit 126")
    for name, value in (environment or {}).items():
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(f"timeout -k 2 {timeout_s:g} {shlex.join(argv)}")
    lines.append("rc=$?")
    if marker is not None:
        lines.append(f"printf '%s' {shlex.quote(marker.decode())} > /dev/udp/127.0.0.1/{marker_port}")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


def request_file(
    argv: Sequence[str],
    timeout_s: float,
    workdir: str | None,
    environment: dict[str, str] | None,
    marker: bytes | None,
    marker_port: int,
) -> str | None:
    """A batch worker's request: the same command as ``request_script``, one item a line
    (``limit``, ``cwd``, ``env NAME=VALUE``, ``marker PORT HEX``, then ``arg`` × argv).
    None if an item holds a line break (that request runs as a fresh process instead)."""
    items = list(argv) + list(environment or {}) + list((environment or {}).values()) + [workdir or ""]
    if any("\n" in item or "\r" in item for item in items):
        return None
    lines = [f"limit {timeout_s:g}"]
    if workdir:
        lines.append(f"cwd {workdir}")
    lines += [f"env {name}={value}" for name, value in (environment or {}).items()]
    if marker is not None:
        lines.append(f"marker {marker_port} {marker.hex()}")
    lines += [f"arg {item}" for item in argv]
    return "\n".join(lines) + "\n"


@dataclass
class _Waiting:
    event: threading.Event = field(default_factory=threading.Event)
    status: int | None = None  # None once set: the agent was closed before it answered


class Agent:
    """The harness side of one container's agent: ``run`` is ``docker exec`` without Docker.

    With ``batch`` it is the harness side of a batch worker: requests are ``.req`` files,
    and the worker's wrapper says ``exited N`` in ``done`` if the worker ends."""

    def __init__(self, folder: Path, batch: bool = False):
        self.folder = folder
        self.batch = batch
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("requests", "done"):
            path = folder / name
            path.unlink(missing_ok=True)
            os.mkfifo(path, 0o600)
        if not batch:
            (folder / "agent.sh").write_text(SCRIPT)
        self.exited: int | None = None  # a batch worker's exit status, once it has ended
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting] = {}
        self._ready = threading.Event()
        self._closed = False
        self._next = 0
        # Opened read-write: neither open blocks, and neither end ever sees EOF while the
        # agent restarts or no request is pending.
        self._requests = os.open(folder / "requests", os.O_RDWR)
        self._done = os.open(folder / "done", os.O_RDWR)
        self._done_open = True
        self._reader = threading.Thread(target=self._read, name=f"agent-{folder.name}", daemon=True)
        self._reader.start()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        return self._ready.wait(timeout_s)

    def _read(self) -> None:
        """Dispatch the agent's lines; this thread alone closes ``done`` (no read of a
        closed, perhaps reused, descriptor), once ``close`` has woken it."""
        buffered = b""
        try:
            while not self._closed:
                try:
                    chunk = os.read(self._done, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    self._dispatch(line.decode(errors="replace").split())
        finally:
            with self._lock:
                self._done_open = False
                with contextlib.suppress(OSError):
                    os.close(self._done)

    def _dispatch(self, words: list[str]) -> None:
        if words == ["ready"]:
            self._ready.set()
            return
        if len(words) == 2 and words[0] == "exited" and words[1].isdigit():
            # The worker ended (its wrapper says so): what it was serving fails, and
            # ``run`` refuses the next request (the pod then runs it as a fresh process).
            with self._lock:
                self.exited = int(words[1])
                ended = list(self._waiting.values())
            for each in ended:
                each.event.set()
            return
        if len(words) != 2 or not words[1].isdigit():
            return  # not a line of the agent's (it writes only these two kinds)
        with self._lock:
            waiting = self._waiting.get(words[0])
        if waiting is not None:
            waiting.status = int(words[1])
            waiting.event.set()

    def run(
        self,
        argv: Sequence[str],
        timeout_s: float,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
        marker: bytes | None = None,
        marker_port: int = 0,
    ) -> tuple[int, bytes, bytes, float]:
        """Run ``argv`` as a fresh process in the container: (exit status, stdout, stderr, seconds)."""
        if self.batch:
            text = request_file(argv, timeout_s, workdir, environment, marker, marker_port)
            if text is None:
                raise HarnessError(f"a line break in the request for {argv[0]}: a batch worker cannot take it")
        else:
            text = request_script(argv, timeout_s, workdir, environment, marker, marker_port)
        with self._lock:
            if self._closed:
                raise HarnessError("the agent is closed")
            if self.exited is not None:
                raise HarnessError(f"the batch worker in {self.folder} exited with status {self.exited}")
            self._next += 1
            request = f"r{self._next}"
            waiting = self._waiting[request] = _Waiting()
        suffix = ".req" if self.batch else ".sh"
        (self.folder / f"{request}{suffix}").write_text(text)
        started = time.monotonic()
        try:
            os.write(self._requests, f"{request}\n".encode())  # one short write: atomic on a FIFO
            if not waiting.event.wait(timeout_s + GRACE_S):
                raise HarnessError(
                    f"the agent in {self.folder.name} did not answer within {timeout_s + GRACE_S:.0f} s "
                    f"(is its container paused or gone?)"
                )
            if waiting.status is None:
                if self.exited is not None:
                    raise HarnessError(
                        f"the batch worker in {self.folder} exited with status {self.exited} while serving "
                        f"{' '.join(argv)}; its log: {self.log_tail()}"
                    )
                raise HarnessError(f"the agent in {self.folder.name} was closed before {argv[0]} ended")
            elapsed = time.monotonic() - started
            out = self.folder / f"{request}.out"
            err = self.folder / f"{request}.err"
            stdout = out.read_bytes() if out.is_file() else b""
            stderr = err.read_bytes() if err.is_file() else b""
        finally:
            with self._lock:
                self._waiting.pop(request, None)
            for suffix in (".sh", ".req", ".out", ".err"):
                (self.folder / f"{request}{suffix}").unlink(missing_ok=True)
        return waiting.status, stdout, stderr, elapsed

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of a batch worker's own log (``worker.log``: its stdout and stderr)."""
        log = self.folder / "worker.log"
        text = log.read_text(errors="replace") if log.is_file() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"

    def close(self) -> None:
        """Stop: requests still waiting end at once with an error, the reader thread ends
        and closes ``done``; ``requests`` is closed here."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiting = list(self._waiting.values())
        for each in waiting:
            each.event.set()  # status stays None: "closed before it answered"
        with self._lock, contextlib.suppress(OSError):
            if self._done_open:  # never write to a descriptor the reader has closed (and reused)
                os.write(self._done, b"closed\n")  # wakes the reader, which then sees _closed
        with contextlib.suppress(OSError):
            os.close(self._requests)
