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
