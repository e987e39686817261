"""Cells of the matrix: planning, running one cell, and the results file (SPEC §10).

A cell is one server implementation × one client implementation × one scenario × one
TLS version. Cells whose server configuration is identical share one server process
(the configuration is the whole of what a server knows, so nothing leaks between
them); every distinct configuration gets its own process on its own port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import capture
from harness.errors import HarnessError, UsageError
from harness.pods import ExecResult, Pod, Run, ServerNotReady, ServerProcess, ServerUnsupported, tail
from harness.registry import Expected, Registry
from harness.scenarios import TLS_VERSIONS, Scenario, ServerSide, select, wire_mismatches
from harness.verdicts import Evidence, decide

CELL_TIMEOUT_S = 15.0
#: After Ctrl-C, how long the running cells may take to finish (a cell's own limits, and some).
DRAIN_S = 45.0
FIRST_PORT = 10000
#: How many server processes a starter thread brings up ahead of the workers (SPEC §11:
#: server start-up off the critical path), in the order the workers will take them.
START_AHEAD = 2
#: (server implementation, its configuration, TLS version, the cell id for fresh processes or "").
ServerKey = tuple[str, ServerSide, str, str]
RESULTS_SCHEMA = 2
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


@dataclass(frozen=True)
class Cell:
    """One server x client x scenario x TLS version, with what it must show.

    ``expected`` comes from the catalogue and the two manifests (harness.registry);
    ``unsupported`` says why the cell cannot run, decided before it runs.
    """

    server: str
    client: str
    scenario: Scenario
    tls: str
    expected: Expected
    unsupported: str | None = None

    @property
    def id(self) -> str:
        return f"{self.server}-server--{self.client}-client--{self.scenario.id}--tls{self.tls}"


def check_tls(versions: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(versions))
    for version in chosen:
        if version not in TLS_VERSIONS:
            raise UsageError(f"unknown TLS version {version!r}: choose from {', '.join(TLS_VERSIONS)}")
    return chosen or list(TLS_VERSIONS)


def plan(
    registry: Registry,
    servers: Iterable[str] = (),
    clients: Iterable[str] = (),
    scenario_ids: Iterable[str] = (),
    tls: Iterable[str] = (),
) -> list[Cell]:
    """Every cell of the selection, in a stable order; empty filters mean "all"."""
    chosen_servers = registry.check("server", servers)
    chosen_clients = registry.check("client", clients)
    chosen_tls = check_tls(tls)
    cells = []
    for scenario in select(list(scenario_ids)):
        for version in chosen_tls:
            if version not in scenario.tls:
                continue
            for server in chosen_servers:
                for client in chosen_clients:
                    why = registry.unsupported(server, client, scenario, version)
                    expected = (
                        Expected("unsupported", rule=why)
                        if why
                        else registry.expectation(server, client, scenario, version)
                    )
                    cells.append(Cell(server, client, scenario, version, expected, why))
    return cells


@dataclass
class CellResult:
    """What one cell showed, against what it had to show."""

    cell: Cell
    observed: str
    native: str = ""
    decided_by: str = ""
    command: str = ""
    exit_code: int = -1
    stdout: str = ""
    stderr: str = ""
    server_command: str = ""
    server_log: str = ""
    duration_s: float = 0.0
    artifacts: dict[str, str] = field(default_factory=dict)
    wire: dict[str, Any] | None = None
    wire_problems: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: The server exited 127 at start (images/CONTRACT.md): what it said it cannot do.
    refused: str = ""

    @property
    def expected(self) -> str:
        return self.cell.expected.verdict

    @property
    def expected_native(self) -> str | None:
        return self.cell.expected.native

    @property
    def reason(self) -> str:
        """Why the expectation differs from the catalogue's default (a stack's rule), or why unsupported."""
        return self.cell.unsupported or self.refused or self.cell.expected.rule

    @property
    def captured(self) -> bool:
        return "pcap" in self.artifacts

    @property
    def unsupported(self) -> bool:
        return bool(self.cell.unsupported or self.refused) and self.observed == "unsupported"

    @property
    def native_ok(self) -> bool:
        return self.expected_native is None or self.native == self.expected_native

    @property
    def passed(self) -> bool:
        if self.refused:
            return self.observed == "unsupported"  # the server said, at start, that it cannot
        if self.wire_problems:
            return False
        if self.observed == self.expected:
            return self.native_ok
        return self.observed in self.cell.expected.also  # the stack's own race, declared with its rule

    @property
    def racy(self) -> bool:
        """The stack's manifest declares a race for this cell (SPEC §14): it may end in more than one verdict."""
        return bool(self.cell.expected.also)

    @property
    def status(self) -> str:
        if self.unsupported:
            return "unsupported"
        return "passed" if self.passed else "failed"

    def explain(self) -> str:
        """Expected vs observed, the native words, the raw evidence and where the artefacts are."""
        expected = self.expected + (f" ({self.expected_native})" if self.expected_native else "")
        if self.racy:
            expected += " or " + " or ".join(self.cell.expected.also) + " (a race of the stack's)"
        lines = [
            f"{self.cell.id}: expected {expected}, observed {self.observed}"
            + (f" ({self.native})" if self.native else ""),
            f"  scenario: {self.cell.scenario.summary}",
        ]
        if self.reason:
            lines.append(f"  stack rule: {self.reason}")
        if self.cell.expected.source:
            lines.append(f"  source: {self.cell.expected.source}")
        for race in self.cell.expected.races:
            lines.append(f"  race ({' or '.join(race.also)}): {race.rule}")
            lines.append(f"  race source: {race.source}")
        if not self.native_ok:
            lines.append(f"  native words: expected {self.expected_native!r}, the stack said {self.native!r}")
        if self.decided_by:
            lines.append(f"  decided by: {self.decided_by}")
        for problem in self.wire_problems:
            lines.append(f"  wire: {problem}")
        lines += [
            f"  server: {self.server_command}",
            f"  client: {self.command}",
            f"  client exit status: {self.exit_code}",
            "  client stdout (last lines):",
            *[f"    {line}" for line in self.stdout.rstrip().splitlines()[-6:]],
            "  client stderr (last lines):",
            *[f"    {line}" for line in self.stderr.rstrip().splitlines()[-6:]],
            "  server log for this cell:",
            *[f"    {line}" for line in self.server_log.rstrip().splitlines()[-6:]],
            "  artefacts: " + ", ".join(f"{k}={v}" for k, v in sorted(self.artifacts.items())),
        ]
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.cell.id,
            "server": self.cell.server,
            "client": self.cell.client,
            "scenario": self.cell.scenario.id,
            "tls": self.cell.tls,
            "expected": self.expected,
            "expected_native": self.expected_native,
            **({"racy": list(self.cell.expected.also)} if self.racy else {}),
            **(
                {
                    "races": [
                        {
                            "by": self.cell.server if r.role == "server" else self.cell.client,
                            "role": r.role,
                            "also": list(r.also),
                            "rule": r.rule,
                            "source": r.source,
                        }
                        for r in self.cell.expected.races
                    ]
                }
                if self.cell.expected.races
                else {}
            ),
            "observed": self.observed,
            "native": self.native,
            "passed": self.passed,
            "status": self.status,
            "reason": self.reason or None,
            "source": self.cell.expected.source or None,
            "expected_by": self.cell.expected.by or None,
            "expected_role": self.cell.expected.by_role or None,
            "decided_by": self.decided_by or None,
            "duration_s": round(self.duration_s, 4),
            "exit_code": self.exit_code,
            "command": self.command,
            "server_command": self.server_command,
            "artifacts": self.artifacts,
            **({"wire": self.wire} if self.captured else {}),
            **({"wire_problems": self.wire_problems} if self.wire_problems else {}),
        }


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (what arrived meanwhile is dropped:
    the run is already ending because of it). Only the main thread can hold them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        for _ in range(16):
            pending = signal.sigpending() & held
            if not pending:
                break
            signal.sigwait(pending)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def ignore_further_interrupts() -> None:
    """From the first Ctrl-C (or SIGTERM) on, the ending run ignores the next ones."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def schedule(cells: Sequence[Cell], key: Callable[[Cell], Any]) -> list[list[Cell]]:
    """Cells grouped by server process, largest group first; each group runs in order."""
    groups: dict[Any, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(key(cell), []).append(cell)
    return sorted(groups.values(), key=len, reverse=True)


def server_key(registry: Registry, cell: Cell) -> ServerKey:
    """Cells with the same key share one server process (and so run one at a time).

    A server whose manifest says it keeps state across connections that can change a
    verdict (``fresh_process``) gets a process of its own for every cell, and so does a
    scenario of several requests (``Scenario.fresh_server``).
    """
    fresh = registry.server(cell.server).fresh_process or cell.scenario.fresh_server
    return (cell.server, cell.scenario.server, cell.tls, cell.id if fresh else "")


def schedule_order(cells: Sequence[Cell], registry: Registry) -> list[Cell]:
    """The order in which ``jobs`` workers reach the cells, near enough: group by group,
    with the groups the runner makes (``server_key``: a fresh-process server's cells are
    groups of one, and come last)."""
    return [cell for group in schedule(cells, lambda c: server_key(registry, c)) for cell in group]


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
        if cell.unsupported:
            outcome = CellResult(cell, "unsupported", native=cell.unsupported)
            cell_dir = self.cell_dir(cell)
            cell_dir.mkdir(parents=True, exist_ok=True)
            outcome.artifacts = {"dir": str(cell_dir)}
            self._write_record(outcome)
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
            self._conclude(outcome, *self._chosen(capture.summarize(pcap)))
        outcome.duration_s = time.monotonic() - started
        self._write_record(outcome)
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
        """Decide the verdict (with the wire's alerts when captured) and check the wire."""
        evidence = Evidence(outcome.exit_code, outcome.stdout, outcome.stderr, outcome.server_log, alerts)
        decision = decide(
            evidence, self.registry.client(outcome.cell.client), self.registry.server(outcome.cell.server)
        )
        outcome.observed, outcome.native, outcome.decided_by = decision.verdict, decision.native, decision.rule
        if captured or outcome.cell.id in self._captured:
            outcome.wire = wire
            outcome.wire_problems = wire_mismatches(
                outcome.cell.scenario,
                outcome.expected,
                wire,
                override=outcome.cell.expected.wire,
                **self.registry.wire_view(outcome.cell),
            )

    def _write_record(self, outcome: CellResult) -> None:
        path = Path(outcome.artifacts["dir"]) / "cell.json"
        path.write_text(json.dumps(outcome.record(), indent=2) + "\n")

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

    @staticmethod
    def _chosen(connections: Sequence[capture.Connection]) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
        """The cell's connection: curl may try ::1 before 127.0.0.1, so the one that got
        a ServerHello counts. Returns its record and the alerts other than close_notify."""
        if not connections:
            return None, []
        chosen = next((c for c in reversed(connections) if c.tls_version), connections[-1])
        return chosen.record(), [(a.sender, a.description) for a in chosen.alerts if a.description != "close_notify"]

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
            self._conclude(item.outcome, *self._chosen(found), captured=True)
            self._write_record(item.outcome)

    def refused_by_server(self, cell: Cell, exc: ServerUnsupported, started: float) -> CellResult:
        """A cell whose server exited 127 at start: unsupported, with the server's own reason."""
        result = CellResult(cell, "unsupported", native=exc.reason, duration_s=time.monotonic() - started)
        result.refused = exc.reason
        cell_dir = self.cell_dir(cell)
        cell_dir.mkdir(parents=True, exist_ok=True)
        result.artifacts = {"dir": str(cell_dir)}
        self._write_record(result)
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

        pending = list(ordered)
        taking = threading.Condition()
        taken = [0]  # groups handed to workers so far (they are taken in order)
        errors: list[BaseException] = []

        def starter() -> None:
            """Server start-up off the critical path: while the workers run the cells of
            group N, the server processes of the next START_AHEAD groups start."""
            for index, group in enumerate(ordered):
                with taking:
                    while not stop.is_set() and index >= taken[0] + START_AHEAD:
                        taking.wait(0.5)
                    if stop.is_set():
                        return
                    if index < taken[0]:
                        continue  # a worker took it first and starts it itself
                first = next((cell for cell in group if not cell.unsupported), None)
                if first is not None:
                    self.prestart(first)

        def worker() -> None:
            while not stop.is_set():
                with taking:
                    if not pending:
                        return
                    group = pending.pop(0)
                    taken[0] += 1
                    taking.notify_all()
                try:
                    work(group)
                except BaseException as exc:  # a bug or a Docker failure: stop, and say it in the main thread
                    errors.append(exc)
                    stop.set()

        # Daemon threads, not an executor: a worker stuck past every limit must never keep
        # an interrupted run (or the interpreter's exit) waiting for it.
        threads = [
            threading.Thread(target=worker, name=f"cell_{n}", daemon=True)
            for n in range(max(1, min(jobs, len(ordered))))
        ]
        helpers = []
        if len(ordered) > len(threads):  # every group beyond the first ones waits for a worker
            helpers.append(threading.Thread(target=starter, name="starter", daemon=True))
        for thread in [*helpers, *threads]:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:
            stop.set()
            # The run is ending: more Ctrl-C must not cut short what follows (the running
            # cells finish, each within its own limit, up to DRAIN_S; then the caller writes
            # the results and removes the containers).
            ignore_further_interrupts()
            deadline = time.monotonic() + DRAIN_S
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            raise
        for helper in helpers:  # it ends with the last group, or at once if the run stopped
            helper.join(DRAIN_S)
        if errors:
            raise errors[0]
        if self.capture:
            self.finish_wire()
        return results

    def versions(self, names: Iterable[str]) -> dict[str, str]:
        """Each implementation's version, asked of its own image (its manifest's probe)."""
        found: dict[str, str] = {}
        for name in names:
            impl = self.registry.get(name)
            try:
                result = self.run.probe(name, impl.version_argv, timeout_s=20)
            except Exception as exc:  # a version probe never fails the run
                found[name] = f"unknown ({type(exc).__name__}: {str(exc)[:120]})"
                continue
            text = result.stdout.decode(errors="replace").strip().splitlines()
            found[name] = (
                text[0]
                if text and result.exit_code == 0
                else f"unknown (exit {result.exit_code}: {tail(result.stderr.decode(errors='replace'))})"
            )
        return found


def count(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """cells, passed, failed and unsupported of result records (unsupported is neither)."""
    statuses = [str(r["status"]) for r in records]
    return {
        "cells": len(statuses),
        "passed": statuses.count("passed"),
        "failed": statuses.count("failed"),
        "unsupported": statuses.count("unsupported"),
    }


def scenario_records(results: Iterable[CellResult]) -> dict[str, dict[str, Any]]:
    """The catalogue entries the results use: summary, default verdict, pinned native words."""
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        scenario = result.cell.scenario
        found.setdefault(
            scenario.id,
            {
                "summary": scenario.summary,
                "expected": scenario.expected,
                "why": scenario.why,
                "source": scenario.source,
                "by_tls": {case.tls: {"expected": case.verdict, "reason": case.reason} for case in scenario.by_tls},
                "native": dict(scenario.native),
            },
        )
    return dict(sorted(found.items()))


def write_results(path: Path, meta: dict[str, Any], results: Sequence[CellResult]) -> dict[str, Any]:
    """``results.json`` (schema 2, harness/schema/results.schema.json): run metadata, the
    scenarios used, and one record per cell. Returns the document."""
    cells = [r.record() for r in sorted(results, key=lambda r: r.cell.id)]
    document = {
        "schema": RESULTS_SCHEMA,
        "run": {**meta, "counts": count(cells)},
        "scenarios": scenario_records(results),
        "cells": cells,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)
    return document


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def merge_documents(documents: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One results document from shards (name, document); a cell in two shards is an error."""
    from harness.schema import validate_results

    cells: dict[str, dict[str, Any]] = {}
    shards = []
    scenarios: dict[str, Any] = {}
    implementations: dict[str, Any] = {}
    for name, document in documents:
        validate_results(document, name)
        for record in document["cells"]:
            if record["id"] in cells:
                raise UsageError(f"cell {record['id']} is in two shards (the second is {name})")
            cells[record["id"]] = record
        scenarios.update(document.get("scenarios", {}))
        implementations.update(document["run"].get("implementations", {}))
        shards.append(
            {"source": name, **{k: v for k, v in document["run"].items() if k not in ("counts", "implementations")}}
        )
    records = sorted(cells.values(), key=lambda r: str(r["id"]))
    run = {
        "run_id": "merged:" + ",".join(str(s.get("run_id", "")) for s in shards),
        "started": min((str(s.get("started", "")) for s in shards), default=""),
        "finished": max((str(s.get("finished", "")) for s in shards), default=""),
        "implementations": implementations,
        "shards": shards,
        "counts": count(records),
    }
    return {"schema": RESULTS_SCHEMA, "run": run, "scenarios": dict(sorted(scenarios.items())), "cells": records}
