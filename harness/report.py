"""What people look at: live progress, the tables per scenario, the summary line, and
report.html (every cell, the differences from the catalogue with their rules, filters).

Rendering is pure (a results document in, text, HTML or rich renderables out); only
``LiveProgress`` touches the terminal and ``write_html`` the file.
"""

from __future__ import annotations

import html
import io
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harness import scenarios
from harness.results import CellRecord, ResultsDocument, RunRecord

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


def _cell_text(record: CellRecord) -> Text:
    observed = str(record["observed"])
    if record.get("status") == "unsupported":
        return Text("– unsupported", style=UNSUPPORTED)
    if record["passed"]:
        return Text("✓ " + observed, style=PASS)
    return Text(f"✗ {observed}\n  (expected {record['expected']})", style=FAIL)


def grouped(cells: list[CellRecord]) -> dict[tuple[str, str], list[CellRecord]]:
    """Cells by (scenario, TLS version), in catalogue order."""
    order = {scenario_id: n for n, scenario_id in enumerate(scenarios.BY_ID)}
    groups: dict[tuple[str, str], list[CellRecord]] = {}
    for record in sorted(
        cells, key=lambda r: (order.get(r["scenario"], len(order)), r["tls"], r["server"], r["client"])
    ):
        groups.setdefault((record["scenario"], record["tls"]), []).append(record)
    return groups


def tables(document: ResultsDocument) -> Group:
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


def summary_line(document: ResultsDocument) -> str:
    counts = document.get("run", {}).get("counts", {})
    seconds = document.get("run", {}).get("seconds")
    line = (
        f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
        f"{counts.get('unsupported', 0)} unsupported"
    )
    return line + (f" in {seconds:.1f} s" if isinstance(seconds, int | float) else "")


def scenario_lines(document: ResultsDocument, width: int = 80) -> list[str]:
    """One line per scenario (both TLS versions): cells, passed, failed, unsupported, then
    the stacks whose manifests make its verdict differ from the catalogue's default,
    wrapped on indented lines so that nothing is cut at ``width`` columns."""
    import textwrap

    by_scenario: dict[str, list[CellRecord]] = {}
    for cell in document.get("cells", []):
        by_scenario.setdefault(str(cell["scenario"]), []).append(cell)
    name_width = min(max((len(s) for s in by_scenario), default=10), width - 40)
    lines = [f"{'scenario':<{name_width}} {'cells':>5} {'passed':>6} {'failed':>6} {'unsup':>5}"]
    for scenario, cells in by_scenario.items():
        count = {k: sum(1 for c in cells if c["status"] == k) for k in ("passed", "failed", "unsupported")}
        name = scenario if len(scenario) <= name_width else scenario[: name_width - 1] + "…"
        lines.append(
            f"{name:<{name_width}} {len(cells):>5} {count['passed']:>6} {count['failed']:>6} {count['unsupported']:>5}"
        )
        differ = sorted({str(c["expected_by"]) for c in cells if c.get("expected_by")})
        if differ:
            lines.extend(
                textwrap.wrap(
                    "differ: " + ", ".join(differ),
                    width,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_on_hyphens=False,  # a stack's name (lighttpd-wolfssl) is never split
                    break_long_words=False,
                )
            )
    return lines


def render_text(document: ResultsDocument, width: int = 160) -> str:
    """The tables and the summary line as plain text (for logs and tests)."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(tables(document))
    console.print(summary_line(document))
    return console.export_text()


# --- report.html ---------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.05em;margin:1.4em 0 .3em}
.meta{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;font-size:.9em;color:#444}
.filters{margin:1em 0;padding:.6em;background:#f4f4f4;border-radius:6px}
.filters fieldset{display:inline-block;border:0;margin:0 1.2em 0 0;padding:0}
.filters legend{font-weight:600;padding:0}
table.grid{border-collapse:collapse;margin:.2em 0 .6em}
table.grid th,table.grid td{border:1px solid #ccc;padding:.35em .6em;vertical-align:top;text-align:left}
table.grid th{background:#fafafa}
td.pass{background:#e3f6e5} td.fail{background:#fde2e2} td.unsupported{background:#fff4cf}
td .verdict{font-family:ui-monospace,monospace;font-weight:600;white-space:nowrap}
.grids{display:flex;flex-wrap:wrap;gap:0 1.5em;align-items:flex-start}
td details{font-size:.85em;margin-top:.2em} td details a{margin-right:.6em}
.caption{color:#555;font-size:.9em}
.summary{font-weight:600;margin:.5em 0}
"""

_JS = """
function applyFilters(){
  const on = n => new Set([...document.querySelectorAll('input[data-filter="'+n+'"]:checked')].map(e => e.value));
  const servers = on('server'), clients = on('client'), scenarios = on('scenario');
  document.querySelectorAll('section.scenario').forEach(s => {
    s.hidden = !scenarios.has(s.dataset.scenario);
  });
  document.querySelectorAll('[data-server]').forEach(e => {
    if (e.tagName === 'TR') e.hidden = !servers.has(e.dataset.server);
  });
  document.querySelectorAll('[data-client]').forEach(e => {
    e.hidden = !clients.has(e.dataset.client);
  });
}
document.addEventListener('change', applyFilters);
function openTarget(){
  const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === 'DETAILS') target.open = true;
}
window.addEventListener('hashchange', openTarget);
window.addEventListener('load', openTarget);
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(path: str | None, base: Path, label: str) -> str:
    if not path:
        return ""
    try:
        target = os.path.relpath(path, base)
    except ValueError:
        target = path
    return f'<a href="{_esc(target)}">{_esc(label)}</a>'


def _cell_html(record: CellRecord, base: Path) -> str:
    observed = str(record["observed"])
    state = {"unsupported": "unsupported", "passed": "pass"}.get(str(record.get("status")), "fail")
    artifacts = record.get("artifacts") or {}
    links = "".join(
        _link(artifacts.get(key), base, label)
        for key, label in (
            ("client_stdout", "stdout"),
            ("client_stderr", "stderr"),
            ("server_log", "server log"),
            ("pcap", "pcap"),
            ("keylog", "keylog"),
        )
    )
    reason = f"<div>stack rule: {_esc(record['reason'])}</div>" if record.get("reason") else ""
    if record.get("source"):
        reason += f"<div>source: {_esc(record['source'])}</div>"
    native = f"<div>native: <code>{_esc(record['native'])}</code></div>" if record.get("native") else ""
    if record.get("expected_native"):
        native += f"<div>expected native: <code>{_esc(record['expected_native'])}</code></div>"
    racy = ""
    if record.get("racy"):
        # A race inside the stack, declared with its rule (SPEC §14): any of these passes.
        racy = " or " + " or ".join(f"<code>{_esc(v)}</code>" for v in record["racy"]) + " (racy: the stack's own race)"
    for race in record.get("races", []):
        reason += f"<div>race ({_esc(race['by'])}): {_esc(race['rule'])}</div><div>source: {_esc(race['source'])}</div>"
    wire = record.get("wire")
    wire_html = ""
    if wire:
        wire_html = (
            f"<div>wire: TLS {_esc(wire.get('tls_version'))}, client certificates "
            f"{_esc(wire.get('client_certificate_count'))}, alerts "
            f"{_esc(', '.join(a['from'] + ':' + a['description'] for a in wire.get('alerts', [])) or 'none')}</div>"
        )
    return (
        f'<td class="{state}" data-client="{_esc(record["client"])}" data-cell="{_esc(record["id"])}">'
        f'<span class="verdict">{"✓" if record["passed"] else "✗"} {_esc(observed)}{" ~" if racy else ""}</span>'
        f"<details><summary>details</summary>"
        f"<div>expected: <code>{_esc(record['expected'])}</code>{racy}</div>"
        f"<div>observed: <code>{_esc(observed)}</code></div>{native}{reason}{wire_html}"
        f"<div>client: <code>{_esc(record.get('command', ''))}</code> (exit {_esc(record.get('exit_code'))})</div>"
        f"<div>{links}</div></details></td>"
    )


def _checkboxes(name: str, values: list[str]) -> str:
    boxes = "".join(
        f'<label><input type="checkbox" data-filter="{name}" value="{_esc(v)}" checked> {_esc(v)}</label> '
        for v in values
    )
    return f"<fieldset><legend>{name}</legend>{boxes}</fieldset>"


def differences(document: ResultsDocument) -> list[dict[str, Any]]:
    """Where a stack's manifest makes cells differ from the catalogue's default: one entry
    per (scenario, stack, role, expected verdict, rule), with its TLS versions, its peers
    and its cells, in catalogue order."""
    order = {sid: n for n, sid in enumerate(scenarios.BY_ID)}
    found: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    for cell in document.get("cells", []):
        races = cell.get("races", [])
        raced = {v for race in races for v in race["also"]}
        outcomes = {str(cell["expected"]), *cell.get("racy", [])}
        rows = []
        if cell.get("expected_by"):
            # The [[expect]]'s verdict, with the other outcomes its own rule declares.
            by = str(cell["expected_by"])
            own = [v for v in cell.get("racy", []) if v not in raced]
            # The role its [[expect]] names; a results.json from before expected_role had
            # only the name, which is ambiguous when one stack is both server and client.
            role = cell.get("expected_role") or ("server" if by == cell["server"] else "client")
            rows.append((by, role, [cell["expected"], *own], cell.get("reason"), cell.get("source"), bool(own)))
        for race in races:  # each race with its own rule, beside the expected verdict
            rows.append(
                (race["by"], race["role"], [cell["expected"], *race["also"]], race["rule"], race["source"], True)
            )
        for by, role, verdicts, rule, source, racy in rows:
            peer = cell["client"] if role == "server" else cell["server"]
            key = (str(cell["scenario"]), str(by), role, " or ".join(map(str, verdicts)), str(rule or ""))
            entry = found.setdefault(
                key,
                {
                    "scenario": key[0],
                    "stack": key[1],
                    "role": role,
                    "verdict": key[3],
                    "rule": key[4],
                    "source": str(source or ""),
                    "tls": set(),
                    "peers": set(),
                    "cells": 0,
                    "failed": 0,
                    "seen": {},  # a race's outcomes: how many of its cells ended in each
                },
            )
            entry["tls"].add(cell["tls"])
            entry["peers"].add(peer)
            entry["cells"] += 1
            entry["failed"] += cell["status"] == "failed"
            if racy and cell["observed"] in outcomes:
                entry["seen"][cell["observed"]] = entry["seen"].get(cell["observed"], 0) + 1
    return sorted(found.values(), key=lambda e: (order.get(e["scenario"], 999), e["stack"], e["role"], e["verdict"]))


def _scenario(document: ResultsDocument, scenario: str) -> dict[str, Any]:
    """The catalogue entry results.json keeps for ``scenario`` (empty in an older document)."""
    return dict(document.get("scenarios", {}).get(scenario) or {})


def _default_verdict(document: ResultsDocument, scenario: str) -> str:
    entry = _scenario(document, scenario)
    by_tls = entry.get("by_tls") or {}
    base = str(entry.get("expected", ""))
    extra = "; ".join(f"TLS {tls}: {v['expected']}" for tls, v in sorted(by_tls.items()) if v["expected"] != base)
    return base + (f" ({extra})" if extra else "")


def _default_html(document: ResultsDocument, scenario: str) -> str:
    """The scenario's default verdict, why it is the default and where that is written."""
    entry = _scenario(document, scenario)
    if not entry.get("why"):
        return ""
    return (
        f'<div class="caption">default <code>{_esc(_default_verdict(document, scenario))}</code>: '
        f"{_esc(entry['why'])}<br>source: {_esc(entry.get('source', ''))}</div>"
    )


def _differences_html(document: ResultsDocument) -> str:
    """Differences first: per scenario, the stacks that differ and the rule that says why;
    then per stack, what it does differently in every scenario."""
    entries = differences(document)
    if not entries:
        return ""
    rows = []
    for entry in entries:
        peers = sorted(entry["peers"])
        who = "every peer" if len(peers) > 6 else ", ".join(peers)
        source = f'<div class="caption">source: {_esc(entry["source"])}</div>' if entry["source"] else ""
        if entry["seen"]:
            seen = ", ".join(f"{_esc(v)} in {n}" for v, n in sorted(entry["seen"].items(), key=lambda kv: -kv[1]))
            source += f'<div class="caption">a race: seen this run, {seen}</div>'
        rows.append(
            f'<tr data-stack="{_esc(entry["stack"])}"><td><a href="#scenario-{_esc(entry["scenario"])}">'
            f'{_esc(entry["scenario"])}</a><div class="caption">default: '
            f"<code>{_esc(_default_verdict(document, entry['scenario']))}</code></div></td>"
            f'<td><a href="#stack-{_esc(entry["stack"])}">{_esc(entry["stack"])}</a> as {entry["role"]}'
            f'<div class="caption">with {_esc(who)}; TLS {_esc(", ".join(sorted(entry["tls"])))}; '
            f"{entry['cells']} cell(s){', ' + str(entry['failed']) + ' failed' if entry['failed'] else ''}</div></td>"
            f'<td><code class="verdict">{_esc(entry["verdict"])}</code></td><td>{_esc(entry["rule"])}{source}</td></tr>'
        )
    by_stack: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_stack.setdefault(entry["stack"], []).append(entry)
    ran = list(dict.fromkeys(str(c["scenario"]) for c in document.get("cells", [])))
    stacks = []
    for stack, items in sorted(by_stack.items()):
        lines = "".join(
            f'<li><a href="#scenario-{_esc(e["scenario"])}">{_esc(e["scenario"])}</a> as {e["role"]}: '
            f"<code>{_esc(e['verdict'])}</code> (TLS {_esc(', '.join(sorted(e['tls'])))}) — {_esc(e['rule'])}</li>"
            for e in items
        )
        differing = {e["scenario"] for e in items}
        same = [s for s in ran if s not in differing]
        links = ", ".join(f'<a href="#scenario-{_esc(name)}">{_esc(name)}</a>' for name in same)
        rest = f"<p>In the other {len(same)} scenario(s) it gets the default verdict: {links}.</p>" if same else ""
        stacks.append(
            f'<details id="stack-{_esc(stack)}"><summary><b>{_esc(stack)}</b>: differs in {len(differing)} '
            f"scenario(s)</summary><ul>{lines}</ul>{rest}</details>"
        )
    return (
        '<section id="differences"><h2>How the stacks differ from the default</h2>'
        '<div class="caption">Each row: a scenario, a stack whose manifest makes its cells differ from the '
        "catalogue's default (an OpenSSL 3.0 peer), the verdict it gets instead, and the rule from the stack's "
        "source or documentation. The grids below hold every cell.</div>"
        '<table class="grid diff"><thead><tr><th>scenario</th><th>stack</th><th>verdict</th><th>why</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
        f'<section id="stacks"><h2>Per stack</h2>{"".join(stacks)}</section>'
    )


def _settings_html(run: RunRecord) -> str:
    """What each wrapper sets beyond its stack's own mTLS example or defaults (SPEC §14)."""
    rows = []
    for name, impl in sorted((run.get("implementations") or {}).items()):
        for setting in impl.get("settings") or []:
            needed = setting.get("needed_by") or []
            only = f'<div class="caption">only for {_esc(", ".join(needed))}</div>' if needed else ""
            rows.append(
                f"<tr><td>{_esc(name)} as {_esc(setting['role'])}</td>"
                f"<td><code>{_esc(setting['what'])}</code>{only}</td>"
                f'<td>{_esc(setting["why"])}<div class="caption">source: {_esc(setting["source"])}</div></td>'
                f"<td>{_esc(setting['verdicts'])}</td></tr>"
            )
    if not rows:
        return ""
    return (
        '<section id="settings"><h2>Settings beyond the stacks\' defaults</h2>'
        '<div class="caption">What a wrapper sets that the stack\'s own mTLS example or defaults would not, '
        "and which verdicts that changes; where it would change one, the matrix shows the default's verdict "
        "unless the scenario needs the setting.</div>"
        '<table class="grid diff"><thead><tr><th>stack</th><th>setting</th><th>why</th><th>verdicts it changes</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def render_html(document: ResultsDocument, base: Path) -> str:
    """The static report: a grid per scenario x TLS version, filters, links, metadata."""
    run = document.get("run", {})
    cells = document.get("cells", [])
    servers = sorted({c["server"] for c in cells})
    clients = sorted({c["client"] for c in cells})
    groups = grouped(cells)
    scenario_ids = list(dict.fromkeys(scenario for scenario, _tls in groups))
    meta_rows = [
        ("run", run.get("run_id", "")),
        ("started", run.get("started", "")),
        ("finished", run.get("finished", "")),
        ("jobs / capture", f"{run.get('jobs', '')} / {run.get('capture', False)}"),
    ]
    for name, impl in sorted((run.get("implementations") or {}).items()):
        meta_rows.append((name, f"{impl.get('stack', '')}: {impl.get('version', '')} [{impl.get('image', '')}]"))
    meta = "".join(f"<div>{_esc(k)}</div><div>{_esc(v)}</div>" for k, v in meta_rows)
    sections = []
    for scenario in scenario_ids:
        summary = scenarios.BY_ID[scenario].summary if scenario in scenarios.BY_ID else ""
        grids = []
        for (group_scenario, tls), records in groups.items():
            if group_scenario != scenario:
                continue
            by_pair = {(r["server"], r["client"]): r for r in records}
            head = "".join(f'<th data-client="{_esc(c)}">{_esc(c)}</th>' for c in clients)
            rows = []
            for server in servers:
                tds = "".join(
                    _cell_html(by_pair[(server, c)], base)
                    if (server, c) in by_pair
                    else f'<td data-client="{_esc(c)}">-</td>'
                    for c in clients
                )
                rows.append(f'<tr data-server="{_esc(server)}"><th>{_esc(server)}</th>{tds}</tr>')
            grids.append(
                f'<table class="grid" data-tls="{_esc(tls)}"><caption>TLS {_esc(tls)}</caption>'
                f"<thead><tr><th>server \\ client</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        sections.append(
            f'<section class="scenario" id="scenario-{_esc(scenario)}" data-scenario="{_esc(scenario)}">'
            f"<h2>{_esc(scenario)}</h2>"
            f'<div class="caption">{_esc(summary)}</div>{_default_html(document, scenario)}'
            f'<div class="grids">{"".join(grids)}</div></section>'
        )
    filters = _checkboxes("server", servers) + _checkboxes("client", clients) + _checkboxes("scenario", scenario_ids)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>mtls-harness report {_esc(run.get('run_id', ''))}</title><style>{_CSS}</style></head><body>"
        f"<h1>mtls-harness matrix</h1><div class=summary>{_esc(summary_line(document))}</div>"
        f'<div class="meta">{meta}</div>{_settings_html(run)}{_differences_html(document)}<h2>Every cell</h2>'
        f'<div class="filters">{filters}</div>'
        f"{''.join(sections)}<script>{_JS}</script></body></html>\n"
    )


def write_html(document: ResultsDocument, path: Path) -> Path:
    path.write_text(render_html(document, path.parent), encoding="utf-8")
    return path
