"""Two runs on one Docker engine: into different folders both finish, untouched by each
other; into one folder the second refuses at once with one line naming the first."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

SELECTION = ["--server", "python", "--client", "curl", "--scenario", "trusted-client", "--scenario", "no-client-cert"]


def start(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "matrix", *SELECTION, *extra, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_into_different_folders_both_finish(tmp_path: Path) -> None:
    first, second = start(tmp_path / "a"), start(tmp_path / "b", "--jobs", "1")
    for process in (first, second):
        _out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["run"]["run_id"] != b["run"]["run_id"]
    assert a["run"]["counts"] == b["run"]["counts"] == {"cells": 4, "passed": 4, "failed": 0, "unsupported": 0}


def test_a_second_run_into_a_folder_in_use_refuses_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    first = start(out, "--tls", "1.3")
    deadline = time.monotonic() + 300
    lock = out / ".mtls-harness.lock"
    while not (lock.exists() and lock.read_text().strip()):  # created, then written under its flock
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    holder = json.loads(lock.read_text())
    second = start(out)
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 2
    assert err.strip() == (
        f"mtls-harness: {out} is in use by run {holder['run_id']} (pid {first.pid}): "
        "wait for it, or choose another --out"
    )
    _out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert json.loads((out / "results.json").read_text())["run"]["run_id"] == holder["run_id"]


def test_diff_of_two_real_runs_names_the_cells_one_run_lacks(tmp_path: Path) -> None:
    """`mtls-harness diff` on two real runs: the same cells agree (exit 0); a run with one
    more TLS version shows those cells as only in NEW (exit 1)."""
    for name, extra in (("a", ("--tls", "1.3")), ("b", ("--tls", "1.3")), ("c", ())):
        process = start(tmp_path / name, *extra)
        _out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]

    def diff(old: str, new: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "harness", "diff", str(tmp_path / old), str(tmp_path / new)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    same = diff("a", "b")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.startswith("compared 2 cell(s): 0 verdict(s) changed, 0 only in NEW, 0 only in OLD")
    more = diff("a", "c")
    assert more.returncode == 1, more.stdout + more.stderr
    assert "0 verdict(s) changed, 2 only in NEW, 0 only in OLD" in more.stdout
    assert "python-server--curl-client--no-client-cert--tls1.2" in more.stdout
