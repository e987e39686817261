"""``mtls-harness upgrade``: later-generation cells against their Debian 12 cells, without Docker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli, upgrade
from harness.results import RESULTS_SCHEMA, CellRecord, ResultsDocument
from harness.schema import validate_results


def cell(server: str, client: str, scenario: str, observed: str, **extra: Any) -> CellRecord:
    record: dict[str, Any] = {
        "id": f"{server}-server--{client}-client--{scenario}--tls1.3",
        "server": server,
        "client": client,
        "scenario": scenario,
        "tls": "1.3",
        "expected": extra.pop("expected", observed),
        "expected_native": None,
        "observed": observed,
        "native": extra.pop("native", ""),
        "passed": True,
        "status": extra.pop("status", "passed"),
        "reason": extra.pop("reason", None),
        "source": extra.pop("source", None),
        "expected_by": extra.pop("expected_by", None),
        "expected_role": None,
        "decided_by": None,
        "duration_s": 0.1,
        "exit_code": 0,
        "command": "request-mtls",
        "server_command": "server-mtls",
        "artifacts": {},
        **extra,
    }
    record["passed"] = record["status"] == "passed"
    return record  # type: ignore[return-value]


def document(*cells: CellRecord) -> ResultsDocument:
    doc: ResultsDocument = {
        "schema": RESULTS_SCHEMA,
        "run": {"run_id": "r", "started": "s", "finished": "f", "implementations": {}, "counts": {}},  # type: ignore[typeddict-item]
        "scenarios": {},
        "cells": list(cells),
    }
    doc["run"]["counts"] = {"cells": len(cells), "passed": 0, "failed": 0, "unsupported": 0}
    validate_results(doc)  # the synthetic cells are what a run writes
    return doc


OLD = [
    cell("nginx", "curl", "trusted-client", "ok"),
    cell("nginx", "curl", "expired-client-cert", "reported:expired"),
    cell("nginx", "curl", "no-client-cert", "reported:no-cert"),
    cell("nginx", "go", "no-client-cert", "reported:no-cert", racy=["server-rejected:closed"]),
    cell("nginx", "curl", "revoked-client-cert", "unsupported", status="unsupported"),
]
NEW = [
    cell("nginx@13", "curl", "trusted-client", "ok"),  # unchanged
    # changed, and the Debian 13 table says so with its rule: explained
    cell(
        "nginx@13",
        "curl",
        "expired-client-cert",
        "server-rejected:certificate_expired",
        expected_by="nginx@13",
        reason="nginx 1.26 rejects an expired certificate at the handshake",
        source="https://example.invalid/nginx#L1",
        native="certificate expired",
    ),
    # changed, and nothing says why: the failure an upgrade report exists for
    cell("nginx@13", "curl", "no-client-cert", "ok", expected="reported:no-cert", status="failed"),
    # another outcome of a race both declare: not a change
    cell(
        "nginx@13",
        "go",
        "no-client-cert",
        "server-rejected:closed",
        expected="reported:no-cert",
        racy=["server-rejected:closed"],
    ),
    cell("nginx@13", "curl", "revoked-client-cert", "unsupported", status="unsupported"),
    cell("nginx@13", "python", "trusted-client", "ok"),  # no Debian 12 cell given
]


def test_later_cells_pair_with_their_debian_12_cells() -> None:
    assert upgrade.counterpart("nginx@13-server--curl@13-client--x--tls1.3") == "nginx-server--curl-client--x--tls1.3"
    assert upgrade.counterpart("nginx-server--curl@13-client--x--tls1.2") == "nginx-server--curl-client--x--tls1.2"
    assert upgrade.counterpart("nginx-server--curl-client--x--tls1.2") is None
    assert upgrade.counterpart("lighttpd-gnutls@13-server--go-client--a-b--tls1.2") == (
        "lighttpd-gnutls-server--go-client--a-b--tls1.2"
    )


def test_changes_are_grouped_by_stack_and_a_change_without_a_rule_is_a_failure() -> None:
    found = upgrade.compare([document(*NEW), document(*OLD)])
    assert (found.compared, found.unchanged, found.raced) == (4, 1, 1)
    assert found.unpaired == ["nginx@13-server--python-client--trusted-client--tls1.3"]
    assert [(c.scenario, c.was, c.now, c.explained) for c in found.changes] == [
        ("expired-client-cert", "reported:expired", "server-rejected:certificate_expired", True),
        ("no-client-cert", "reported:no-cert", "ok", False),
    ]
    assert [c.cell for c in found.unexplained] == ["nginx@13-server--curl-client--no-client-cert--tls1.3"]
    assert list(found.by_stack()) == ["nginx@13"]
    text = upgrade.render_text(found)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "rule: nginx 1.26 rejects an expired certificate at the handshake" in text
    assert "rule: none yet (a failure until one is found)" in text


def test_the_rule_must_be_the_later_generations_own() -> None:
    """A Debian 12 expectation that happens to match is no rule for a change."""
    new = cell("nginx@13", "curl", "no-client-cert", "ok", expected_by="nginx", reason="a 12 rule")
    found = upgrade.compare([document(new, OLD[2])])
    assert [c.explained for c in found.changes] == [False]


def test_the_command_exits_1_on_a_change_without_a_rule_and_2_on_nothing_to_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "new.json").write_text(json.dumps(document(*NEW)))
    (tmp_path / "old.json").write_text(json.dumps(document(*OLD)))
    assert cli.main(["upgrade", str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == 1
    assert "nginx@13" in capsys.readouterr().out
    explained = [c for c in NEW if c["scenario"] != "no-client-cert" or c["client"] == "go"]
    (tmp_path / "fixed.json").write_text(json.dumps(document(*explained)))
    assert cli.main(["upgrade", str(tmp_path / "fixed.json"), str(tmp_path / "old.json")]) == 0
    assert cli.main(["upgrade", str(tmp_path / "old.json")]) == 2
    assert "no cell of a later Debian generation" in capsys.readouterr().err
    assert cli.main(["upgrade", str(tmp_path / "missing.json")]) == 2
