"""Execution of cells (SPEC §8, §11): server processes started once per configuration,
each cell's client run in its pod, its log and capture cut per cell, and its judgement.

The order of cells and their grouping by server process come from harness.cells; the
threads and Ctrl-C from harness.scheduling; the verdict and the wire's check from
harness.judgement; the records from harness.results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import capture
from harness.cells import Cell, ServerKey, schedule, server_key
from harness.errors import HarnessError
from harness.judgement import chosen_connection, judge
from harness.pods import ExecResult, Pod, Run, ServerNotReady, ServerProcess, ServerUnsupported
from harness.registry import Registry
from harness.results import CellResult, write_cell
from harness.scheduling import run_groups

CELL_TIMEOUT_S = 15.0
FIRST_PORT = 10000
#: How long a scenario's earlier request may stay open on the server's side before the
#: cell's own request starts anyway (it is written beside the cell when it does).
CLOSED_WAIT_S = 10.0
#: TCP states (the kernel's /proc/net/tcp numbering) of a socket its program has not
#: closed: SYN_RECV, ESTABLISHED, CLOSE_WAIT (the peer's FIN read, no close of its own yet).
OPEN_STATES = frozenset({"01", "03", "08"})


def open_on_port(table: str, port: int) -> int:
    """How many sockets of /proc/net/tcp or tcp6 text have ``port`` as their local port and
    an open state: connections the server's program has not closed yet."""
    count = 0
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1]:
            continue
        local_port = fields[1].rsplit(":", 1)[1]
        try:
            if int(local_port, 16) == port and fields[3].upper() in OPEN_STATES:
                count += 1
        except ValueError:
            continue
    return count


@dataclass
class Pending:
    """A cell run with capture whose wire is inspected at the end of the run."""

    outcome: CellResult
    pod: Pod
    follower: capture.PcapFollower
    first: int
    port: int


class Runner:
    """Runs cells in a ``Run``: starts server processes on demand and execs clients."""

    def __init__(
        self,
        run: Run,
        registry: Registry,
        capture: bool = False,
        purpose: str = "matrix",
        agents: bool = True,
        batch: bool = False,
    ):
        self.run = run
        self.registry = registry
        self.capture = capture
        self.purpose = purpose
        self.agents = agents  # False: every cell is a docker exec (the parity test's other path)
        # True: a client with a batch worker (its manifest's [client.batch]) serves its
        # cells there; False: every client is a fresh process per request (the tutorial's way).
        self.batch = batch
        self._servers: dict[ServerKey, ServerProcess] = {}
        self._server_locks: dict[ServerKey, threading.Lock] = {}
        # A start that failed (tried by the starter thread or a worker): every cell of that
        # configuration meets the same error (a timeout, an unsupported server, Docker's
        # refusal) without trying again.
        self._start_errors: dict[ServerKey, Exception] = {}
        self._lock = threading.Lock()
        self._next_port = FIRST_PORT
        self._pending: list[Pending] = []
        self._captured: set[str] = set()
        # Where the next cell of a server process starts in its pod's capture: just past
        # the previous cell's marker. The capture file is written in buffered bursts, so
        # its length when a cell starts can still lack the previous cell's last packets.
        self._window_start: dict[tuple[str, int], int] = {}

    def cell_dir(self, cell: Cell) -> Path:
        """``cells/<id>`` for the matrix; a second runner of the same cells (the wire or
        parity tests) keeps its own files in ``cells/<purpose>/<id>``."""
        base = self.run.out_dir / "cells"
        return base / cell.id if self.purpose == "matrix" else base / self.purpose / cell.id

    def path_in(self, relative: str) -> str:
        return self.run.container_path(self.run.certs_dir / relative)

    def server_key(self, cell: Cell) -> ServerKey:
        return server_key(self.registry, cell)

    def server_for(self, cell: Cell) -> ServerProcess:
        """The cell's server process, started once per configuration, even from two threads."""
        key = self.server_key(cell)
        with self._lock:
            if key in self._servers:
                return self._servers[key]
            starting = self._server_locks.setdefault(key, threading.Lock())
        with starting:
            with self._lock:
                if key in self._servers:
                    return self._servers[key]
                if key in self._start_errors:
                    raise self._start_errors[key]
                port = self._next_port
                self._next_port += 1
            argv, workdir = self.registry.server_command(
                cell.server, cell.scenario.server, cell.tls, port, self.path_in
            )
            pod = self.run.pod(cell.server, self.purpose, capture=self.capture, agents=self.agents)
            ready = self.registry.server(cell.server).ready
            try:
                process = pod.start_server(f"{cell.server}-{port}", argv, port, workdir=workdir, ready_text=ready)
            except (ServerNotReady, ServerUnsupported) as exc:
                # Every cell of this configuration meets the same start, once: not a new
                # attempt (and another wait of READY_TIMEOUT_S) per cell.
                with self._lock:
                    self._start_errors.setdefault(key, exc)
                raise
            with self._lock:
                self._servers[key] = process
            return process

    def prestart(self, cell: Cell) -> None:
        """Start ``cell``'s server process ahead of its worker (the starter thread of
        ``run_cells``); a failure is kept for the worker, which then meets it itself."""
        try:
            self.server_for(cell)
        except Exception as exc:  # kept, not swallowed: server_for raises it for the cell
            with self._lock:
                self._start_errors.setdefault(self.server_key(cell), exc)

    def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
        """Run one cell. With ``defer_wire`` its capture is inspected later, in one pass
        per pod (``finish_wire``); until then its result carries no wire. A cell its
        implementations cannot run is ``unsupported`` without starting anything."""
        if cell.why_unsupported:
            outcome = CellResult(cell, "unsupported", native=cell.why_unsupported)
            cell_dir = self.cell_dir(cell)
            cell_dir.mkdir(parents=True, exist_ok=True)
            outcome.artifacts = {"dir": str(cell_dir)}
            write_cell(outcome)
            return outcome
        server = self.server_for(cell)
        server.pod.client(cell.client)
        # A cell's time starts once its server listens and its client's container (and
        # agent) runs: each is started once per pod and configuration, not per cell.
        started = time.monotonic()
        cell_dir = self.cell_dir(cell)
        cell_dir.mkdir(parents=True, exist_ok=True)
        url = f"https://localhost:{server.port}"
        self._before(cell, server, url, cell_dir)
        offset = server.log_size()
        side = cell.scenario.client
        argv, workdir = self.registry.client_command(cell.client, side, url + (side.path or ""), self.path_in)
        follower = server.pod.capture
        environment, first_packet = None, 0
        if follower is not None:
            keylog = cell_dir / "keylog.txt"
            keylog.unlink(missing_ok=True)
            environment = {"SSLKEYLOGFILE": self.run.container_path(keylog)}
            first_packet = follower.poll()
        result: ExecResult = server.pod.exec(
            cell.client,
            argv,
            timeout_s=CELL_TIMEOUT_S,
            workdir=workdir,
            environment=environment,
            marker=cell.id if follower is not None else None,
            batch=self.batch,
        )
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        artifacts = {
            "dir": str(cell_dir),
            "client_stdout": str(cell_dir / "client.stdout"),
            "client_stderr": str(cell_dir / "client.stderr"),
            "server_log": str(cell_dir / "server.log"),
        }
        outcome = CellResult(
            cell,
            "",
            command=" ".join(argv),
            exit_code=result.exit_code,
            stdout=stdout,
            stderr=stderr,
            server_command=" ".join(server.argv),
            server_log=server.log_text()[offset:],
            artifacts=artifacts,
        )
        (cell_dir / "client.stdout").write_text(stdout)
        (cell_dir / "client.stderr").write_text(stderr)
        (cell_dir / "server.log").write_text(outcome.server_log)
        if follower is None:
            self._conclude(outcome, None, [])
        elif defer_wire:
            self._conclude(outcome, None, [])  # provisional, for progress; the wire decides later
            with self._lock:
                self._pending.append(Pending(outcome, server.pod, follower, first_packet, server.port))
        else:
            pcap, packets = self._cut(outcome, follower, first_packet, server.port)
            self._conclude(outcome, *chosen_connection(capture.summarize(pcap)))
        outcome.duration_s = time.monotonic() - started
        write_cell(outcome)
        return outcome

    def _before(self, cell: Cell, server: ServerProcess, url: str, cell_dir: Path) -> None:
        """The scenario's earlier requests (``Scenario.before``), in order, on the cell's
        server process: kept as ``before-N.*`` beside the cell, never judged."""
        for number, side in enumerate(cell.scenario.before, 1):
            argv, workdir = self.registry.client_command(cell.client, side, url + (side.path or ""), self.path_in)
            result = server.pod.exec(cell.client, argv, timeout_s=CELL_TIMEOUT_S, workdir=workdir, batch=self.batch)
            (cell_dir / f"before-{number}.command").write_text(" ".join(argv) + "\n")
            (cell_dir / f"before-{number}.stdout").write_bytes(result.stdout)
            (cell_dir / f"before-{number}.stderr").write_bytes(result.stderr)
            (cell_dir / f"before-{number}.exit").write_text(f"{result.exit_code}\n")
            still_open = self._await_server_close(server, cell.client)
            if still_open:
                (cell_dir / f"before-{number}.still-open").write_text(still_open + "\n")

    def _await_server_close(self, server: ServerProcess, client: str) -> str:
        """Wait until the server has closed every connection to its port, as seen from
        the pod's network namespace (the client container shares it), so that a scenario's
        next request meets a server whose earlier connection is over, not one still
        draining it: NSS, for one, keeps a peer's certificates in its temporary database
        while a connection holds them, and the intermediate-cache cell would then read
        what a concurrent connection gives. Returns "" once closed, else what stayed open."""
        deadline = time.monotonic() + CLOSED_WAIT_S
        argv = ("cat", "/proc/net/tcp", "/proc/net/tcp6")
        while True:
            table = server.pod.exec(client, argv, timeout_s=5.0, batch=False).stdout.decode(errors="replace")
            count = open_on_port(table, server.port)
            if count == 0:
                return ""
            if time.monotonic() >= deadline:
                where = f"to port {server.port} still open on the server's side"
                return f"{count} connection(s) {where} after {CLOSED_WAIT_S:g} s"
            time.sleep(0.02)

    def _conclude(
        self, outcome: CellResult, wire: dict[str, Any] | None, alerts: list[tuple[str, str]], captured: bool = False
    ) -> None:
        """Judge the cell; its wire too once its capture was cut (now, or earlier in the run)."""
        check_wire = captured or outcome.cell.id in self._captured
        judge(outcome, self.registry, wire, alerts, check_wire)

    def _cut(
        self, outcome: CellResult, follower: capture.PcapFollower, first: int, port: int
    ) -> tuple[Path, list[capture.Packet]]:
        """The cell's own connections, with its key log embedded, as handshake.pcap."""
        cell_dir = Path(outcome.artifacts["dir"])
        where = (str(follower.path), port)
        first = max(first, self._window_start.get(where, 0))
        last = follower.wait_for_marker(outcome.cell.id, first)
        self._window_start[where] = last + 1
        packets = capture.cell_packets(follower.packets, first, last, port)
        keylog_path = cell_dir / "keylog.txt"
        keylog = keylog_path.read_bytes() if keylog_path.is_file() else b""
        pcap = follower.write_pcapng(cell_dir / "handshake.pcap", packets, keylog)
        outcome.artifacts["pcap"] = str(pcap)
        outcome.artifacts["keylog"] = str(keylog_path)
        with self._lock:
            self._captured.add(outcome.cell.id)
        return pcap, packets

    def finish_wire(self) -> None:
        """Inspect every deferred cell: one tshark pass per pod over all its cells."""
        with self._lock:
            pending, self._pending = self._pending, []
        by_pod: dict[str, list[Pending]] = {}
        for item in pending:
            by_pod.setdefault(item.pod.name, []).append(item)
        with ThreadPoolExecutor(max_workers=max(1, len(by_pod)), thread_name_prefix="wire") as pool:
            for future in [pool.submit(self._finish_pod, items) for items in by_pod.values()]:
                future.result()

    def _finish_pod(self, items: list[Pending]) -> None:
        """Cut each cell out of one pod's capture and inspect them all in one tshark pass."""
        follower, pod = items[0].follower, items[0].pod
        start = follower.poll()
        pod.send_marker("end-of-run")
        end = follower.wait_for_marker("end-of-run", start)
        keys: dict[str, set[tuple[int, int]]] = {}
        keylogs = []
        for item in items:
            _pcap, packets = self._cut(item.outcome, follower, item.first, item.port)
            keys[item.outcome.cell.id] = {(p.src_port, p.dst_port) for p in packets if p.syn_only}
            keylog = Path(item.outcome.artifacts["keylog"])
            keylogs.append(keylog.read_bytes() if keylog.is_file() else b"")
        whole = self.run.out_dir / "capture" / f"{pod.name}-inspected.pcapng"
        tcp = [p for p in follower.packets[:end] if p.proto == "tcp"]
        follower.write_pcapng(whole, tcp, b"".join(keylogs))
        connections: dict[tuple[int, int], list[capture.Connection]] = {}
        for connection in capture.summarize(whole):
            connections.setdefault((connection.client_port, connection.server_port or 0), []).append(connection)

        def of(key: tuple[int, int]) -> list[capture.Connection]:
            # A connection the server closed after the ClientHello has no server side in
            # tshark's view (server_port None): it is found by its client port alone.
            return connections.get(key, []) + connections.get((key[0], 0), [])

        for item in items:
            found = [c for key in sorted(keys[item.outcome.cell.id]) for c in of(key)]
            ambiguous = any(len(of(key)) > 1 for key in keys[item.outcome.cell.id])
            if ambiguous:  # a client port used twice on one server port: inspect alone
                found = capture.summarize(Path(item.outcome.artifacts["pcap"]))
            self._conclude(item.outcome, *chosen_connection(found), captured=True)
            write_cell(item.outcome)

    def refused_by_server(self, cell: Cell, exc: ServerUnsupported, started: float) -> CellResult:
        """A cell whose server exited 127 at start: unsupported, with the server's own reason."""
        result = CellResult(cell, "unsupported", native=exc.reason, duration_s=time.monotonic() - started)
        result.refused = exc.reason
        cell_dir = self.cell_dir(cell)
        cell_dir.mkdir(parents=True, exist_ok=True)
        result.artifacts = {"dir": str(cell_dir)}
        write_cell(result)
        return result

    def failed(self, cell: Cell, exc: BaseException, started: float) -> CellResult:
        """The result of a cell the harness could not run: never a pass, always explained."""
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return CellResult(cell, "harness-error:" + message, duration_s=time.monotonic() - started)

    def run_cells(
        self,
        cells: Sequence[Cell],
        jobs: int,
        on_done: Callable[[CellResult], None] | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, CellResult]:
        """Run ``cells`` with up to ``jobs`` at once; return the results by cell id.

        Cells that share a server process run one after another, in order (its log and
        capture are cut per cell by time of arrival); different server processes run in
        parallel. Ctrl-C stops handing out cells and lets the running ones finish.
        """
        ordered = schedule(cells, self.server_key)
        results: dict[str, CellResult] = {}
        stop = stop or threading.Event()

        def work(group: list[Cell]) -> None:
            for cell in group:
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    result = self.run_cell(cell, defer_wire=self.capture)
                except ServerNotReady as exc:
                    result = CellResult(cell, "timeout", native=str(exc), duration_s=time.monotonic() - started)
                except ServerUnsupported as exc:
                    result = self.refused_by_server(cell, exc, started)
                except HarnessError as exc:
                    result = self.failed(cell, exc, started)
                results[cell.id] = result
                if on_done is not None:
                    on_done(result)

        def prestart(group: list[Cell]) -> None:
            first = next((cell for cell in group if not cell.why_unsupported), None)
            if first is not None:
                self.prestart(first)

        run_groups(ordered, work, jobs, stop, prestart)
        if self.capture:
            self.finish_wire()
        return results
