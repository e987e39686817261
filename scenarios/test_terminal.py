"""The end of a matrix run, read in a real 80-column terminal (a tmux pane).

What a user sees last must fit: one line per scenario with the stacks that differ, the
failures, the summary, and no verdict cut at the edge.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]


def test_the_matrix_summary_fits_an_80_column_terminal(tmp_path: Path) -> None:
    session = f"mtls-harness-80-{time.monotonic_ns()}"
    done = tmp_path / "done"
    command = (
        f"{sys.executable} -m harness matrix --server python --server go --client curl --client go "
        "--scenario leaf-without-intermediate --scenario no-client-cert --scenario expired-client-cert "
        f"--out {tmp_path / 'out'}; echo exit=$? > {done}; sleep 600"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "60", command], check=True)
    try:
        deadline = time.monotonic() + 300
        while not done.exists():
            assert time.monotonic() < deadline, "the matrix did not finish within 300 s"
            time.sleep(0.5)
        pane = subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-t", session, "-S", "-200"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    assert done.read_text().strip() == "exit=0", pane
    lines = [line.rstrip() for line in pane.splitlines()]
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    wanted = ("leaf-without-intermediate", "no-client-cert", "expired-client-cert")
    scenario_rows = {words[0]: words[1:] for words in map(str.split, lines) if words and words[0] in wanted}
    assert scenario_rows["leaf-without-intermediate"] == ["8", "8", "0", "0"], pane
    differ = [line.strip() for line in lines if line.strip().startswith("differ:")]
    assert any("go" in line.split() or "go," in line.split() for line in differ), pane
    assert any(line.startswith("24 passed, 0 failed, 0 unsupported") for line in lines), pane
