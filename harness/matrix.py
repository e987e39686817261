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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import impls
from harness.errors import UsageError
from harness.pods import ExecResult, Run, ServerProcess, tail
from harness.scenarios import TLS_VERSIONS, Scenario, ServerSide, select
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

    @property
    def passed(self) -> bool:
        return self.observed == self.expected

    def explain(self) -> str:
        """Expected vs observed, the raw evidence and where the artefacts are."""
        lines = [
            f"{self.cell.id}: expected {self.expected}, observed {self.observed}",
            f"  scenario: {self.cell.scenario.summary}",
        ]
        if self.reason:
            lines.append(f"  stack rule: {self.reason}")
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
        }


class Runner:
    """Runs cells in a ``Run``: starts server processes on demand and execs clients."""

    def __init__(self, run: Run):
        self.run = run
        self._servers: dict[tuple[str, ServerSide, str], ServerProcess] = {}
        self._server_locks: dict[tuple[str, ServerSide, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._next_port = FIRST_PORT

    def path_in(self, relative: str) -> str:
        return self.run.container_path(self.run.certs_dir / relative)

    def server_for(self, cell: Cell) -> ServerProcess:
        key = (cell.server, cell.scenario.server, cell.tls)
        with self._lock:
            if key in self._servers:
                return self._servers[key]
            port = self._next_port
            self._next_port += 1
            name = f"{cell.server}-{port}"
        command = impls.server_command(cell.server, cell.scenario.server, cell.tls, port, self.path_in)
        process = self.run.pod(cell.server).start_server(name, command.argv, port, workdir=command.workdir)
        with self._lock:
            self._servers[key] = process
        return process

    def run_cell(self, cell: Cell) -> CellResult:
        started = time.monotonic()
        server = self.server_for(cell)
        offset = server.log_size()
        url = f"https://localhost:{server.port}"
        command = impls.client_command(cell.client, cell.scenario.client, url, self.path_in)
        result: ExecResult = server.pod.exec(
            cell.client, command.argv, timeout_s=CELL_TIMEOUT_S, workdir=command.workdir
        )
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        observed = decide(Evidence(cell.client, result.exit_code, stdout, stderr))
        if observed == "unsupported" and cell.client == "curl" and "not found" in stderr:
            observed = "harness-error:client-missing"
        expected, reason = cell.expectation()
        server_log = server.log_text()[offset:]
        cell_dir = self.run.out_dir / "cells" / cell.id
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "client.stdout").write_text(stdout)
        (cell_dir / "client.stderr").write_text(stderr)
        (cell_dir / "server.log").write_text(server_log)
        artifacts = {
            "dir": str(cell_dir),
            "client_stdout": str(cell_dir / "client.stdout"),
            "client_stderr": str(cell_dir / "client.stderr"),
            "server_log": str(cell_dir / "server.log"),
        }
        outcome = CellResult(
            cell,
            expected,
            reason,
            observed,
            command.display(),
            result.exit_code,
            stdout,
            stderr,
            " ".join(server.argv),
            server_log,
            time.monotonic() - started,
            artifacts,
        )
        (cell_dir / "cell.json").write_text(json.dumps(outcome.record(), indent=2) + "\n")
        return outcome

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
                result = self.run.pod(pod_impl).exec(impl, argv, timeout_s=20)
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
