"""The results model (SPEC §10): what one cell showed, its record, and the results document.

Every writer and reader of results goes through here: the runner writes ``cell.json``
(``write_cell``) and the engine ``results.json`` and ``junit.xml``; ``merge``, ``diff`` and the
report read them with ``load_results``. The records are typed (``CellRecord``,
``ResultsDocument``) after harness/schema/results.schema.json, which validates them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict, cast
from xml.etree import ElementTree

from harness.cells import Cell
from harness.errors import UsageError
from harness.registry import Registry
from harness.schema import validate_results

RESULTS_SCHEMA = 2
Status = Literal["passed", "failed", "unsupported"]


class RaceRecord(TypedDict):
    """A [[race]] a manifest declares for the cell, with its rule."""

    by: str
    role: str
    also: list[str]
    rule: str
    source: str


class _CellRequired(TypedDict):
    id: str
    server: str
    client: str
    scenario: str
    tls: str
    expected: str
    expected_native: str | None
    observed: str
    native: str
    passed: bool
    status: Status
    reason: str | None
    source: str | None
    expected_by: str | None
    expected_role: str | None
    decided_by: str | None
    duration_s: float
    exit_code: int
    command: str
    server_command: str
    artifacts: dict[str, str]


class CellRecord(_CellRequired, total=False):
    """One cell in results.json's ``cells`` (and its cell.json). The keys below are
    present only when they say something: a declared race, a captured wire."""

    racy: list[str]
    races: list[RaceRecord]
    wire: dict[str, Any] | None
    wire_problems: list[str]


class ScenarioRecord(TypedDict):
    """A catalogue entry the results use: its default verdict, with why and where written."""

    summary: str
    expected: str
    why: str
    source: str
    by_tls: dict[str, dict[str, str]]
    native: dict[str, str]


class Counts(TypedDict):
    cells: int
    passed: int
    failed: int
    unsupported: int


class RunRecord(TypedDict, total=False):
    """The run's metadata; a merged document has ``shards`` instead of a run's own settings."""

    run_id: str
    started: str
    finished: str
    implementations: dict[str, dict[str, Any]]
    selection: dict[str, list[str]]
    jobs: int
    capture: bool
    one_shot: bool
    interrupted: bool
    seconds: float | None
    shards: list[dict[str, Any]]
    counts: Counts


class ResultsDocument(TypedDict):
    """results.json, schema 2."""

    schema: int
    run: RunRecord
    scenarios: dict[str, ScenarioRecord]
    cells: list[CellRecord]


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
        return self.cell.why_unsupported or self.refused or self.cell.expected.rule

    @property
    def captured(self) -> bool:
        return "pcap" in self.artifacts

    @property
    def native_ok(self) -> bool:
        return self.expected_native is None or self.native == self.expected_native

    @property
    def passed(self) -> bool:
        """The cell ran and showed what it had to (an unsupported cell did not run: never passed)."""
        return self.status == "passed"

    def _as_expected(self) -> bool:
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
    def status(self) -> Status:
        """passed, failed, or unsupported: the cell could not run, for a stated reason (its
        implementations' manifests before it ran, or the server at start, exit 127)."""
        if (self.cell.why_unsupported or self.refused) and self.observed == "unsupported":
            return "unsupported"
        return "passed" if self._as_expected() else "failed"

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

    def record(self) -> CellRecord:
        """Its cell.json, and its entry in results.json's ``cells``."""
        record: CellRecord = {
            "id": self.cell.id,
            "server": self.cell.server,
            "client": self.cell.client,
            "scenario": self.cell.scenario.id,
            "tls": self.cell.tls,
            "expected": self.expected,
            "expected_native": self.expected_native,
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
        }
        if self.racy:
            record["racy"] = list(self.cell.expected.also)
        if self.cell.expected.races:
            record["races"] = [
                RaceRecord(
                    by=self.cell.server if r.role == "server" else self.cell.client,
                    role=r.role,
                    also=list(r.also),
                    rule=r.rule,
                    source=r.source,
                )
                for r in self.cell.expected.races
            ]
        if self.captured:
            record["wire"] = self.wire
        if self.wire_problems:
            record["wire_problems"] = self.wire_problems
        return record


def count(records: Iterable[CellRecord]) -> Counts:
    """cells, passed, failed and unsupported of result records (unsupported is neither)."""
    statuses = [str(r["status"]) for r in records]
    return {
        "cells": len(statuses),
        "passed": statuses.count("passed"),
        "failed": statuses.count("failed"),
        "unsupported": statuses.count("unsupported"),
    }


def scenario_records(results: Iterable[CellResult]) -> dict[str, ScenarioRecord]:
    """The catalogue entries the results use: summary, default verdict, pinned native words."""
    found: dict[str, ScenarioRecord] = {}
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


def results_document(meta: dict[str, Any], results: Sequence[CellResult]) -> ResultsDocument:
    """The results document (schema 2): run metadata, the scenarios used, one record per cell."""
    cells = [r.record() for r in sorted(results, key=lambda r: r.cell.id)]
    run = cast(RunRecord, {**meta, "counts": count(cells)})
    return {"schema": RESULTS_SCHEMA, "run": run, "scenarios": scenario_records(results), "cells": cells}


def write_results(path: Path, meta: dict[str, Any], results: Sequence[CellResult]) -> ResultsDocument:
    """``results.json`` (schema 2, harness/schema/results.schema.json), written whole or not
    at all. Returns the document."""
    document = results_document(meta, results)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)
    return document


def write_cell(outcome: CellResult) -> None:
    """The cell's own record, ``cell.json`` in its folder (the same record results.json lists)."""
    path = Path(outcome.artifacts["dir"]) / "cell.json"
    path.write_text(json.dumps(outcome.record(), indent=2) + "\n")


def load_results(path: Path) -> ResultsDocument:
    """A results.json (or a folder holding one), validated; a bad one is one clear line."""
    file = path / "results.json" if path.is_dir() else path
    try:
        document = json.loads(file.read_text())
    except FileNotFoundError:
        raise UsageError(f"cannot read {file}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{file} is not a results.json: {str(exc).splitlines()[0]}") from None
    validate_results(document, str(file))
    return cast(ResultsDocument, document)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def merge_documents(documents: Sequence[tuple[str, ResultsDocument]]) -> ResultsDocument:
    """One results document from shards (name, document); a cell in two shards is an error."""
    cells: dict[str, CellRecord] = {}
    shards = []
    scenarios: dict[str, ScenarioRecord] = {}
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
    records = sorted(cells.values(), key=lambda r: r["id"])
    run: RunRecord = {
        "run_id": "merged:" + ",".join(str(s.get("run_id", "")) for s in shards),
        "started": min((str(s.get("started", "")) for s in shards), default=""),
        "finished": max((str(s.get("finished", "")) for s in shards), default=""),
        "implementations": implementations,
        "shards": shards,
        "counts": count(records),
    }
    return {"schema": RESULTS_SCHEMA, "run": run, "scenarios": dict(sorted(scenarios.items())), "cells": records}


def implementation_records(
    found: Registry, names: Iterable[str], tags: Mapping[str, str], versions: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """results.json's ``run.implementations``: stack, roles, the image tag run (``tags``, else
    the manifest's image), the version it said."""
    return {
        name: found.get(name).record(tags.get(name, found.get(name).image), versions.get(name, "unknown"))
        for name in sorted(names)
    }


def write_junit(path: Path, results: Sequence[CellResult]) -> None:
    """One testcase per cell, named by its readable id; a failure carries the explanation."""
    ordered = sorted(results, key=lambda r: r.cell.id)
    suite = ElementTree.Element(
        "testsuite",
        name="mtls-harness",
        tests=str(len(ordered)),
        failures=str(sum(r.status == "failed" for r in ordered)),
        skipped=str(sum(r.status == "unsupported" for r in ordered)),
        time=f"{sum(r.duration_s for r in ordered):.3f}",
    )
    for result in ordered:
        case = ElementTree.SubElement(
            suite, "testcase", classname="matrix", name=result.cell.id, time=f"{result.duration_s:.3f}"
        )
        if result.status == "failed":
            failure = ElementTree.SubElement(
                case, "failure", message=f"expected {result.expected}, observed {result.observed}"
            )
            failure.text = result.explain()
        elif result.status == "unsupported":
            ElementTree.SubElement(case, "skipped", message=result.reason or "unsupported")
    root = ElementTree.Element("testsuites")
    root.append(suite)
    tree = ElementTree.ElementTree(root)
    ElementTree.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
