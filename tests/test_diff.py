"""mtls-harness diff: which cells changed between two runs (pure, no Docker)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import diff
from tests.test_report import document, record

OLD = document(
    record("go", "curl", "no-client-cert", "1.3", "reported:no-cert", "reported:no-cert"),
    record("go", "curl", "expired-client-cert", "1.3", "reported:expired", "reported:expired", native="x509: expired"),
    record("go", "curl", "trusted-client", "1.2", "ok", "ok"),
)
NEW = document(
    record("go", "curl", "no-client-cert", "1.3", "reported:no-cert", "reported:no-cert"),
    record(
        "go", "curl", "expired-client-cert", "1.3", "server-rejected:bad_certificate", "reported:expired", native="bad"
    ),
    record("go", "curl", "trusted-client", "1.3", "ok", "ok"),
    run_id="r2",
)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "diff", *argv], capture_output=True, text=True)


def test_a_changed_verdict_and_the_cells_only_one_run_has_are_listed() -> None:
    comparison = diff.compare(OLD, NEW)
    assert comparison.compared == 2
    assert [(c.cell, c.old, c.new) for c in comparison.changed] == [
        ("go-server--curl-client--expired-client-cert--tls1.3", "reported:expired", "server-rejected:bad_certificate")
    ]
    assert [c.cell for c in comparison.only_old] == ["go-server--curl-client--trusted-client--tls1.2"]
    assert [c.cell for c in comparison.only_new] == ["go-server--curl-client--trusted-client--tls1.3"]
    text = diff.render_text(comparison)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "  was reported:expired  (x509: expired)" in text
    assert "  now server-rejected:bad_certificate  (bad)" in text


def test_the_command_exits_1_on_a_change_0_when_equal_and_writes_html(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(OLD))
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    changed = cli(str(tmp_path / "old"), str(tmp_path / "new.json"), "--html", str(tmp_path / "diff.html"))
    assert changed.returncode == 1, changed.stderr
    assert "1 verdict(s) changed, 1 only in NEW, 1 only in OLD" in changed.stdout
    page = (tmp_path / "diff.html").read_text()
    assert "server-rejected:bad_certificate" in page and "<table>" in page
    same = cli(str(tmp_path / "old"), str(tmp_path / "old" / "results.json"))
    assert same.returncode == 0, same.stdout
    assert "0 verdict(s) changed, 0 only in NEW, 0 only in OLD" in same.stdout


def _racy(observed: str, run_id: str, racy: list[str] | None = None) -> dict[str, object]:
    cell = record("nss", "curl", "require-expired-client-cert", "1.3", observed, "server-rejected:certificate_expired")
    if racy:
        cell["racy"] = racy
    return document(cell, run_id=run_id)


def test_another_outcome_of_a_declared_race_is_listed_apart_and_is_no_change(tmp_path: Path) -> None:
    """SPEC §14: a cell whose stack declares a race may end in any of its outcomes; diff
    says so apart, and exits 0 when nothing else changed. Outside the declared outcomes, or
    declared by one run only, it is a change."""
    closed = ["server-rejected:closed"]
    raced = diff.compare(_racy("server-rejected:certificate_expired", "a", closed), _racy(closed[0], "b", closed))
    assert raced.changed == [] and [c.cell for c in raced.raced] == [
        "nss-server--curl-client--require-expired-client-cert--tls1.3"
    ]
    text = diff.render_text(raced)
    assert "0 verdict(s) changed" in text and "1 other cell(s) ended in another outcome of a race" in text
    assert "within a declared race" in diff.render_html(raced)
    # An outcome the race does not list, or a race only the newer run declares: a change.
    assert diff.compare(_racy(closed[0], "a", closed), _racy("ok", "b", closed)).changed
    assert diff.compare(_racy("server-rejected:certificate_expired", "a"), _racy(closed[0], "b", closed)).changed
    (tmp_path / "a.json").write_text(json.dumps(_racy("server-rejected:certificate_expired", "a", closed)))
    (tmp_path / "b.json").write_text(json.dumps(_racy(closed[0], "b", closed)))
    assert cli(str(tmp_path / "a.json"), str(tmp_path / "b.json")).returncode == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "broken.json").write_text("{")
    for argv in (
        [str(tmp_path / "absent.json"), str(tmp_path / "list.json")],
        [str(tmp_path / "list.json"), str(tmp_path / "list.json")],
        [str(tmp_path / "broken.json"), str(tmp_path / "list.json")],
    ):
        result = cli(*argv)
        assert result.returncode == 2, (argv, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
