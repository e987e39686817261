"""The results model without Docker: every record a run writes follows results schema 2,
the typed records say what the schema says, and the readers take what the writers wrote."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, get_type_hints
from xml.etree import ElementTree

import pytest

from harness import results
from harness.cells import Cell, plan
from harness.errors import UsageError
from harness.registry import Expected, Race, Registry
from harness.results import CellRecord, CellResult, RunRecord, ScenarioRecord
from harness.schema import results_schema, validate_results
from tests.stacks import toy_registry


@pytest.fixture
def toy(tmp_path: Path) -> Registry:
    return toy_registry(tmp_path / "impls")


def _cells(found: Registry) -> dict[str, Cell]:
    cells = plan(
        found,
        scenario_ids=["trusted-client", "no-client-cert", "revoked-client-cert", "expired-client-cert"],
        clients=["toy"],
    )
    return {f"{c.scenario.id}--tls{c.tls}": c for c in cells}


def every_kind(found: Registry, folder: Path) -> list[CellResult]:
    """One result of each kind a run writes: passed, failed (verdict, native words, wire),
    a declared race, unsupported before the run and refused by the server at start, a
    harness error, and a captured cell with its wire record."""
    cells = _cells(found)
    ok = cells["trusted-client--tls1.3"]
    unsupported = cells["revoked-client-cert--tls1.3"]
    assert unsupported.why_unsupported, "the toy server has no CRL support: the fixture needs an unsupported cell"
    race = Race(("trusted-client",), "server", ("ok",), ("server-rejected:closed",), "a rule", "src/x.c#L1", "toy")
    racy = dataclasses.replace(
        cells["trusted-client--tls1.2"],
        expected=Expected(
            "ok", also=("server-rejected:closed",), races=(race,), by="toy", by_role="server", rule="r", source="s"
        ),
    )
    made = [
        CellResult(ok, "ok", native="", exit_code=0, duration_s=0.25),
        CellResult(cells["no-client-cert--tls1.3"], "ok", exit_code=0),
        CellResult(racy, "server-rejected:closed", native="end of stream"),
        CellResult(unsupported, "unsupported", native=unsupported.why_unsupported or ""),
        CellResult(cells["no-client-cert--tls1.2"], "harness-error:docker went away"),
        CellResult(
            cells["expired-client-cert--tls1.3"],
            "unsupported",
            refused="server-mtls: unsupported: --crl",
            native="server-mtls: unsupported: --crl",
        ),
    ]
    captured = CellResult(ok, "ok", exit_code=0)
    captured.artifacts = {"pcap": "cells/x/handshake.pcap"}
    captured.wire = {"tls_version": "1.3", "alerts": [], "client_certificate_count": 2}
    captured.wire_problems = ["the server should send the certificate_required alert; it sent none"]
    for n, result in enumerate(made):
        result.artifacts = {"dir": str(folder / f"cell-{n}")}
    return [*made[:1], *made[1:], captured]


def test_a_written_results_json_follows_the_schema_and_reads_back(toy: Registry, tmp_path: Path) -> None:
    made = every_kind(toy, tmp_path)[:-1]  # the captured one repeats a cell id
    meta = {"run_id": "r1", "started": "s", "finished": "f", "implementations": {}, "jobs": 2, "capture": False}
    written = results.write_results(tmp_path / "out" / "results.json", meta, made)
    validate_results(json.loads((tmp_path / "out" / "results.json").read_text()))
    assert results.load_results(tmp_path / "out") == written
    assert written["run"]["counts"] == {"cells": 6, "passed": 2, "failed": 2, "unsupported": 2}
    by_id = {r["id"]: r for r in written["cells"]}
    racy = by_id["toy-server--toy-client--trusted-client--tls1.2"]
    assert (racy["status"], racy["racy"], racy["races"][0]["by"]) == ("passed", ["server-rejected:closed"], "toy")
    assert set(written["scenarios"]) == {
        "trusted-client",
        "no-client-cert",
        "revoked-client-cert",
        "expired-client-cert",
    }


def test_every_cell_json_follows_the_schemas_cell_record(toy: Registry, tmp_path: Path) -> None:
    import jsonschema

    cell_schema = {"$defs": results_schema()["$defs"], **results_schema()["properties"]["cells"]["items"]}
    for result in every_kind(toy, tmp_path):
        Path(result.artifacts.get("dir", tmp_path / "captured")).mkdir(parents=True, exist_ok=True)
        result.artifacts.setdefault("dir", str(tmp_path / "captured"))
        results.write_cell(result)
        record = json.loads((Path(result.artifacts["dir"]) / "cell.json").read_text())
        jsonschema.validate(record, cell_schema)
        assert record == json.loads(json.dumps(result.record()))


def test_an_unsupported_cell_is_neither_passed_nor_failed(toy: Registry, tmp_path: Path) -> None:
    kinds = every_kind(toy, tmp_path)
    assert [r.status for r in kinds] == ["passed", "failed", "passed", "unsupported", "failed", "unsupported", "failed"]
    assert [r.passed for r in kinds] == [r.status == "passed" for r in kinds]
    refused = kinds[5]
    assert refused.reason == "server-mtls: unsupported: --crl"


def test_the_typed_records_name_what_the_schema_names() -> None:
    """CellRecord's keys are the schema's cell properties, required where it requires them;
    the run and scenario records use no key the schema does not know."""
    schema = results_schema()
    cell = schema["properties"]["cells"]["items"]
    assert set(get_type_hints(CellRecord)) == set(cell["properties"])
    # Always written: what the schema requires, and three it allows older documents to lack.
    assert CellRecord.__required_keys__ - set(cell["required"]) == {"expected_by", "expected_role", "decided_by"}
    assert CellRecord.__optional_keys__ == {"racy", "races", "wire", "wire_problems"}
    assert set(get_type_hints(RunRecord)) <= set(schema["properties"]["run"]["properties"]) | {"one_shot"}
    scenario = schema["properties"]["scenarios"]["additionalProperties"]
    assert set(get_type_hints(ScenarioRecord)) <= set(scenario["properties"])
    assert set(scenario["required"]) <= ScenarioRecord.__required_keys__


def test_shards_merge_into_one_valid_document_and_a_cell_twice_is_refused(toy: Registry, tmp_path: Path) -> None:
    made = every_kind(toy, tmp_path)[:-1]
    meta: dict[str, Any] = {"run_id": "a", "started": "1", "finished": "2", "implementations": {}}
    first = results.results_document(meta, made[:3])
    second = results.results_document({**meta, "run_id": "b"}, made[3:])
    merged = results.merge_documents([("one", first), ("two", second)])
    validate_results(merged)
    assert merged["run"]["counts"] == results.count(first["cells"] + second["cells"])
    assert [s["run_id"] for s in merged["run"]["shards"]] == ["a", "b"]
    with pytest.raises(UsageError, match="is in two shards"):
        results.merge_documents([("one", first), ("again", first)])


def test_a_bad_results_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        results.load_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="is not a results.json"):
        results.load_results(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(UsageError, match="not a results.json of schema 2"):
        results.load_results(tmp_path / "old.json")


def test_junit_has_one_testcase_per_cell_and_counts_what_results_json_counts(toy: Registry, tmp_path: Path) -> None:
    made = every_kind(toy, tmp_path)[:-1]
    results.write_junit(tmp_path / "junit.xml", made)
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()[0]
    counts = results.count(r.record() for r in made)
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        str(counts["cells"]),
        str(counts["failed"]),
        str(counts["unsupported"]),
    )
    failure = suite.find("testcase[@name='toy-server--toy-client--no-client-cert--tls1.3']/failure")
    assert failure is not None and failure.get("message") == "expected reported:no-cert, observed ok"
