"""What people look at: live progress, the tables per scenario, the summary line.

Rendering is pure (a results document in, text or rich renderables out); only
``LiveProgress`` touches the terminal.
"""

from __future__ import annotations

import io
import threading
import time
from types import TracebackType
from typing import IO, Any

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness import scenarios

PASS, FAIL, UNSUPPORTED = "green", "red", "yellow"


class LiveProgress:
    """Cells done / total, failures so far and elapsed time, while the matrix runs."""

    def __init__(self, total: int, stream: IO[str] | None = None):
        self.total = total
        self.failures = 0
        self.done = 0
        self._lock = threading.Lock()
        self.console = Console(file=stream, stderr=stream is None)
        self._progress = Progress(
            TextColumn("[bold]matrix"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cells  [red]{task.fields[failures]} failed"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("cells", total=total, failures=0)
        self.started = time.monotonic()

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def cell_done(self, passed: bool) -> None:
        with self._lock:
            self.done += 1
            self.failures += 0 if passed else 1
            self._progress.update(self._task, advance=1, failures=self.failures)


def _cell_text(record: dict[str, Any]) -> Text:
    observed = str(record["observed"])
    if record["passed"]:
        return Text("✓ " + observed, style=UNSUPPORTED if observed == "unsupported" else PASS)
    return Text(f"✗ {observed}\n  (expected {record['expected']})", style=FAIL)


def grouped(cells: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Cells by (scenario, TLS version), in catalogue order."""
    order = {scenario_id: n for n, scenario_id in enumerate(scenarios.BY_ID)}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in sorted(
        cells, key=lambda r: (order.get(r["scenario"], len(order)), r["tls"], r["server"], r["client"])
    ):
        groups.setdefault((record["scenario"], record["tls"]), []).append(record)
    return groups


def tables(document: dict[str, Any]) -> Group:
    """One table per scenario and TLS version: server rows x client columns."""
    renderables = []
    for (scenario, tls), records in grouped(document.get("cells", [])).items():
        clients = sorted({r["client"] for r in records})
        servers = sorted({r["server"] for r in records})
        summary = scenarios.BY_ID[scenario].summary if scenario in scenarios.BY_ID else ""
        table = Table(title=f"{scenario} (TLS {tls})", caption=summary, title_justify="left", caption_justify="left")
        table.add_column("server \\ client")
        for client in clients:
            table.add_column(client)
        for server in servers:
            row: list[Text | str] = [server]
            for client in clients:
                match = [r for r in records if r["server"] == server and r["client"] == client]
                row.append(_cell_text(match[0]) if match else "-")
            table.add_row(*row)
        renderables.append(table)
    return Group(*renderables)


def summary_line(document: dict[str, Any]) -> str:
    counts = document.get("run", {}).get("counts", {})
    seconds = document.get("run", {}).get("seconds")
    line = (
        f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
        f"{counts.get('unsupported', 0)} unsupported"
    )
    return line + (f" in {seconds:.1f} s" if isinstance(seconds, int | float) else "")


def render_text(document: dict[str, Any], width: int = 160) -> str:
    """The tables and the summary line as plain text (for logs and tests)."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(tables(document))
    console.print(summary_line(document))
    return console.export_text()
