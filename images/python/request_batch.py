"""The batch worker of the Python client (images/CONTRACT.md, "Batch workers").

``python3 request_batch.py FOLDER`` serves ``request-mtls`` requests without starting an
interpreter and importing requests for each. It imports them once, then for each request
id read from ``FOLDER/requests``:

* forks a supervisor, which forks the request: a fresh process that has never opened a
  connection (no TLS session, no pooled connection: this process opens none), with the
  request's working folder, environment, argv, and stdout and stderr to
  ``FOLDER/<id>.out`` and ``.err``; it runs ``request_mtls.main`` and exits with its status;
* the supervisor enforces the limit as ``timeout -k 2`` does (SIGTERM, SIGKILL 2 s later;
  status 124, or 137 if it had to kill), sends the capture marker once the request's
  process is gone, and answers ``<id> <status>`` in ``FOLDER/done``.

Requests run at the same time, each in its own processes. The one-shot ``request-mtls``
is unchanged and is what the tutorial runs.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import traceback

import request_mtls

PROGRAMS = {"request-mtls": request_mtls.main}
KILL_AFTER_S = 2.0


class Request:
    """One ``<id>.req`` file: ``limit``, ``cwd``, ``env``, ``marker`` and ``arg`` lines."""

    def __init__(self, text: str):
        self.limit = 0.0
        self.cwd: str | None = None
        self.env: dict[str, str] = {}
        self.marker: tuple[int, bytes] | None = None
        self.argv: list[str] = []
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "limit":
                self.limit = float(value)
            elif key == "cwd":
                self.cwd = value
            elif key == "env":
                name, _, setting = value.partition("=")
                self.env[name] = setting
            elif key == "marker":
                port, _, payload = value.partition(" ")
                self.marker = (int(port), bytes.fromhex(payload))
            elif key == "arg":
                self.argv.append(value)
            else:
                raise ValueError(f"unknown request line {line!r}")
        if not self.argv or self.limit <= 0:
            raise ValueError("a request needs a limit and an argv")


def run_request(request: Request, out: str, err: str, keep: tuple[int, ...]) -> None:
    """In the request's own process: become what ``request-mtls ARGS`` would be, run, exit."""
    status = 1
    try:
        for fd in keep:
            os.close(fd)
        for target, path in ((1, out), (2, err)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, target)
            os.close(fd)
        if request.cwd:
            os.chdir(request.cwd)
        os.environ.update(request.env)
        program = PROGRAMS.get(request.argv[0])
        if program is None:
            sys.stderr.write(f"request_batch: {request.argv[0]} is not a program this worker serves\n")
            status = 127
        else:
            sys.argv = list(request.argv)
            status = program(request.argv[1:])
    except SystemExit as exc:  # argparse's usage errors and --help, as the one-shot program exits
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            sys.stderr.write(f"{exc.code}\n")
    except BaseException:  # what an uncaught exception does to the one-shot program: trace, exit 1
        traceback.print_exc()
        status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def wait_status(pid: int, limit: float) -> int:
    """The request's exit status, with ``timeout -k 2 LIMIT``'s rules for the limit."""
    pidfd = os.pidfd_open(pid)
    try:
        timed_out = not select.select([pidfd], [], [], limit)[0]
        if timed_out:
            os.kill(pid, signal.SIGTERM)
            if not select.select([pidfd], [], [], KILL_AFTER_S)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return 137
        _, raw = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    if timed_out:
        return 124
    return os.WEXITSTATUS(raw) if os.WIFEXITED(raw) else 128 + os.WTERMSIG(raw)


def supervise(folder: str, request_id: str, keep: tuple[int, ...], done: int) -> None:
    """In the supervisor process: run one request, then answer it."""
    status = 125
    try:
        with open(os.path.join(folder, f"{request_id}.req"), encoding="utf-8") as file:
            request = Request(file.read())
        out, err = (os.path.join(folder, f"{request_id}.{kind}") for kind in ("out", "err"))
        pid = os.fork()
        if pid == 0:
            run_request(request, out, err, keep)
        status = wait_status(pid, request.limit)
        if request.marker is not None:
            port, payload = request.marker
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(payload, ("127.0.0.1", port))
    except BaseException:
        traceback.print_exc()  # to the worker's log
    finally:
        os.write(done, f"{request_id} {status}\n".encode())
        os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: request_batch.py FOLDER\n")
        return 2
    folder = argv[0]
    # Read-write: opening a FIFO so never waits, and neither end sees EOF between requests.
    requests = os.open(os.path.join(folder, "requests"), os.O_RDWR)
    done = os.open(os.path.join(folder, "done"), os.O_RDWR)
    # Supervisors are reaped by the kernel; each one waits for its own request.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    os.write(done, b"ready\n")
    buffered = b""
    while True:
        chunk = os.read(requests, 4096)
        if not chunk:
            return 0
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            request_id = line.decode(errors="replace").strip()
            if not request_id:
                continue
            if os.fork() == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                supervise(folder, request_id, (requests, done), done)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
