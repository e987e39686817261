"""Cells of the matrix: planning, running one cell, and the results file (SPEC §10).

A cell is one server implementation × one client implementation × one scenario × one
TLS version. Cells whose server configuration is identical share one server process
(the configuration is the whole of what a server knows, so nothing leaks between
them); every distinct configuration gets its own process on its own port.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import capture, impls
from harness.errors import HarnessError, UsageError
from harness.pods import ExecResult, Pod, Run, ServerProcess, tail
from harness.scenarios import TLS_VERSIONS, Scenario, ServerSide, select, wire_mismatches
from harness.verdicts import Evidence, decide

CELL_TIMEOUT_S = 15.0
FIRST_PORT = 10000
RESULTS_SCHEMA = 1


@dataclass(frozen=True)
class Cell:
    server: str
    client: str
    scenario: Scenario
    tls: str

    @property
    def id(self) -> str:
        return f"{self.server}-server--{self.client}-client--{self.scenario.id}--tls{self.tls}"

    def expectation(self) -> tuple[str, str]:
        return self.scenario.expectation(self.server, self.client, self.tls)


def check_tls(versions: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(versions))
    for version in chosen:
        if version not in TLS_VERSIONS:
            raise UsageError(f"unknown TLS version {version!r}: choose from {', '.join(TLS_VERSIONS)}")
    return chosen or list(TLS_VERSIONS)


def plan(
    servers: Iterable[str] = (),
    clients: Iterable[str] = (),
    scenario_ids: Iterable[str] = (),
    tls: Iterable[str] = (),
) -> list[Cell]:
    """Every cell of the selection, in a stable order; empty filters mean "all"."""
    chosen_servers = impls.check("server", servers, impls.SERVERS)
    chosen_clients = impls.check("client", clients, impls.CLIENTS)
    chosen_tls = check_tls(tls)
    cells = []
    for scenario in select(list(scenario_ids)):
        for version in chosen_tls:
            if version not in scenario.tls:
                continue
            for server in chosen_servers:
                for client in chosen_clients:
                    cells.append(Cell(server, client, scenario, version))
    return cells


@dataclass
class CellResult:
    cell: Cell
    expected: str
    reason: str
    observed: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    server_command: str
    server_log: str
    duration_s: float
    artifacts: dict[str, str] = field(default_factory=dict)
    wire: dict[str, Any] | None = None
    wire_problems: list[str] = field(default_factory=list)

    @property
    def captured(self) -> bool:
        return "pcap" in self.artifacts

    @property
    def passed(self) -> bool:
        return self.observed == self.expected and not self.wire_problems

    def explain(self) -> str:
        """Expected vs observed, the raw evidence and where the artefacts are."""
        lines = [
            f"{self.cell.id}: expected {self.expected}, observed {self.observed}",
            f"  scenario: {self.cell.scenario.summary}",
        ]
        if self.reason:
            lines.append(f"  stack rule: {self.reason}")
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
            "observed": self.observed,
            "passed": self.passed,
            "reason": self.reason or None,
            "duration_s": round(self.duration_s, 4),
            "exit_code": self.exit_code,
            "command": self.command,
            "server_command": self.server_command,
            "artifacts": self.artifacts,
            **({"wire": self.wire} if self.captured else {}),
        }


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

    def __init__(self, run: Run, capture: bool = False, purpose: str = "matrix"):
        self.run = run
        self.capture = capture
        self.purpose = purpose
        self._servers: dict[tuple[str, ServerSide, str], ServerProcess] = {}
        self._server_locks: dict[tuple[str, ServerSide, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._next_port = FIRST_PORT
        self._pending: list[Pending] = []
        self._captured: set[str] = set()

    def path_in(self, relative: str) -> str:
        return self.run.container_path(self.run.certs_dir / relative)

    @staticmethod
    def server_key(cell: Cell) -> tuple[str, ServerSide, str]:
        """Cells with the same key share one server process (and so run one at a time)."""
        return (cell.server, cell.scenario.server, cell.tls)

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
                port = self._next_port
                self._next_port += 1
            command = impls.server_command(cell.server, cell.scenario.server, cell.tls, port, self.path_in)
            pod = self.run.pod(cell.server, self.purpose, capture=self.capture)
            process = pod.start_server(f"{cell.server}-{port}", command.argv, port, workdir=command.workdir)
            with self._lock:
                self._servers[key] = process
            return process

    def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
        """Run one cell. With ``defer_wire`` its capture is inspected later, in one pass
        per pod (``finish_wire``); until then its result carries no wire."""
        server = self.server_for(cell)
        # A cell's time starts once its server listens: starting a server process is
        # paid once per configuration, not per cell.
        started = time.monotonic()
        offset = server.log_size()
        cell_dir = self.run.out_dir / "cells" / cell.id
        cell_dir.mkdir(parents=True, exist_ok=True)
        url = f"https://localhost:{server.port}"
        command = impls.client_command(cell.client, cell.scenario.client, url, self.path_in)
        follower = server.pod.capture
        environment, first_packet = None, 0
        if follower is not None:
            keylog = cell_dir / "keylog.txt"
            keylog.unlink(missing_ok=True)
            environment = {"SSLKEYLOGFILE": self.run.container_path(keylog)}
            first_packet = follower.poll()
        result: ExecResult = server.pod.exec(
            cell.client,
            command.argv,
            timeout_s=CELL_TIMEOUT_S,
            workdir=command.workdir,
            environment=environment,
            marker=cell.id if follower is not None else None,
        )
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        artifacts = {
            "dir": str(cell_dir),
            "client_stdout": str(cell_dir / "client.stdout"),
            "client_stderr": str(cell_dir / "client.stderr"),
            "server_log": str(cell_dir / "server.log"),
        }
        expected, reason = cell.expectation()
        outcome = CellResult(
            cell,
            expected,
            reason,
            "",
            command.display(),
            result.exit_code,
            stdout,
            stderr,
            " ".join(server.argv),
            server.log_text()[offset:],
            0.0,
            artifacts,
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

    def _conclude(
        self, outcome: CellResult, wire: dict[str, Any] | None, alerts: list[tuple[str, str]], captured: bool = False
    ) -> None:
        """Decide the verdict (with the wire's alerts when captured) and check the wire."""
        observed = decide(Evidence(outcome.cell.client, outcome.exit_code, outcome.stdout, outcome.stderr, alerts))
        if observed == "unsupported" and "not found" in outcome.stderr:
            observed = "harness-error:client-missing"
        outcome.observed = observed
        if captured or outcome.cell.id in self._captured:
            outcome.wire = wire
            outcome.wire_problems = wire_mismatches(outcome.cell.scenario, outcome.expected, wire)

    def _write_record(self, outcome: CellResult) -> None:
        path = Path(outcome.artifacts["dir"]) / "cell.json"
        path.write_text(json.dumps(outcome.record(), indent=2) + "\n")

    def _cut(
        self, outcome: CellResult, follower: capture.PcapFollower, first: int, port: int
    ) -> tuple[Path, list[capture.Packet]]:
        """The cell's own connections, with its key log embedded, as handshake.pcap."""
        cell_dir = Path(outcome.artifacts["dir"])
        last = follower.wait_for_marker(outcome.cell.id, first)
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
        for item in items:
            found = [c for key in sorted(keys[item.outcome.cell.id]) for c in connections.get(key, [])]
            ambiguous = any(len(connections.get(key, [])) > 1 for key in keys[item.outcome.cell.id])
            if ambiguous:  # a client port used twice on one server port: inspect alone
                found = capture.summarize(Path(item.outcome.artifacts["pcap"]))
            self._conclude(item.outcome, *self._chosen(found), captured=True)
            self._write_record(item.outcome)

    def failed(self, cell: Cell, exc: BaseException, started: float) -> CellResult:
        """The result of a cell the harness could not run: never a pass, always explained."""
        expected, reason = cell.expectation()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return CellResult(
            cell, expected, reason, "harness-error:" + message, "", -1, "", "", "", "", time.monotonic() - started
        )

    def run_cells(
        self,
        cells: Sequence[Cell],
        jobs: int,
        on_done: Callable[[CellResult], None] | None = None,
    ) -> dict[str, CellResult]:
        """Run ``cells`` with up to ``jobs`` at once; return the results by cell id.

        Cells that share a server process run one after another, in order (its log and
        capture are cut per cell by time of arrival); different server processes run in
        parallel. Ctrl-C stops handing out cells and lets the running ones finish.
        """
        groups: dict[tuple[str, ServerSide, str], list[Cell]] = {}
        for cell in cells:
            groups.setdefault(self.server_key(cell), []).append(cell)
        ordered = sorted(groups.values(), key=len, reverse=True)
        results: dict[str, CellResult] = {}
        stop = threading.Event()

        def work(group: list[Cell]) -> None:
            for cell in group:
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    result = self.run_cell(cell, defer_wire=self.capture)
                except HarnessError as exc:
                    result = self.failed(cell, exc, started)
                results[cell.id] = result
                if on_done is not None:
                    on_done(result)

        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="cell")
        try:
            for future in [pool.submit(work, group) for group in ordered]:
                future.result()
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if self.capture:
            self.finish_wire()
        return results

    def versions(self, pod_impl: str) -> dict[str, str]:
        """Versions of each stack, asked of the images themselves."""
        probes = {
            "node": ("node", ["node", "-p", "process.version + ' (OpenSSL ' + process.versions.openssl + ')'"]),
            "python": (
                "python",
                [
                    "python3",
                    "-c",
                    "import ssl,sys,OpenSSL,requests;"
                    "print(sys.version.split()[0], ssl.OPENSSL_VERSION, 'pyOpenSSL', OpenSSL.__version__,"
                    " 'requests', requests.__version__)",
                ],
            ),
            "curl": ("curl", ["curl", "--version"]),
        }
        found: dict[str, str] = {}
        for name, (impl, argv) in probes.items():
            try:
                result = self.run.pod(pod_impl, self.purpose, capture=self.capture).exec(impl, argv, timeout_s=20)
            except Exception as exc:  # a version probe never fails the run
                found[name] = f"unknown ({type(exc).__name__})"
                continue
            text = result.stdout.decode(errors="replace").strip().splitlines()
            found[name] = (
                text[0]
                if text
                else f"unknown (exit {result.exit_code}: {tail(result.stderr.decode(errors='replace'))})"
            )
        return found


def write_results(path: Path, meta: dict[str, Any], results: Sequence[CellResult]) -> None:
    """``results.json``: run metadata and one record per cell (schema in README.md)."""
    counts = {"cells": len(results), "passed": sum(r.passed for r in results)}
    counts["failed"] = counts["cells"] - counts["passed"]
    counts["unsupported"] = sum(r.observed == "unsupported" for r in results)
    counts["passed"] -= counts["unsupported"]
    document = {
        "schema": RESULTS_SCHEMA,
        "run": {**meta, "counts": counts},
        "cells": [r.record() for r in sorted(results, key=lambda r: r.cell.id)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def merge_documents(documents: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One results document from shards (name, document); a cell in two shards is an error."""
    cells: dict[str, dict[str, Any]] = {}
    shards = []
    for name, document in documents:
        if document.get("schema") != RESULTS_SCHEMA or "cells" not in document:
            raise UsageError(f"{name} is not a results.json of schema {RESULTS_SCHEMA}")
        for record in document["cells"]:
            if record["id"] in cells:
                raise UsageError(f"cell {record['id']} is in two shards (the second is {name})")
            cells[record["id"]] = record
        shards.append({"source": name, **{k: v for k, v in document["run"].items() if k != "counts"}})
    records = sorted(cells.values(), key=lambda r: str(r["id"]))
    passed = sum(1 for r in records if r["passed"] and r["observed"] != "unsupported")
    unsupported = sum(1 for r in records if r["observed"] == "unsupported")
    counts = {
        "cells": len(records),
        "passed": passed,
        "failed": len(records) - passed - unsupported,
        "unsupported": unsupported,
    }
    first = shards[0] if shards else {}
    run = {
        "run_id": "merged:" + ",".join(str(s.get("run_id", "")) for s in shards),
        "started": min((str(s.get("started", "")) for s in shards), default=""),
        "finished": max((str(s.get("finished", "")) for s in shards), default=""),
        "versions": first.get("versions", {}),
        "images": first.get("images", {}),
        "shards": shards,
        "counts": counts,
    }
    return {"schema": RESULTS_SCHEMA, "run": run, "cells": records}
