"""The engine without Docker: options checked before anything happens, the output lock, junit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness import engine
from harness.errors import UsageError
from harness.matrix import CellResult, plan
from tests.stacks import toy_registry


def test_bad_options_are_refused_before_the_output_folder_is_touched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    for options, message in (
        (engine.Options(jobs=0, out=out), "--jobs must be at least 1"),
        (engine.Options(servers=("nope",), out=out), "unknown server implementation 'nope'"),
        (engine.Options(tls=("1.1",), out=out), "unknown TLS version"),
        (engine.Options(impls=(tmp_path / "missing",), out=out), "no impl.toml there"),
    ):
        with pytest.raises(UsageError, match=message):
            engine.plan(options)
    assert (out / "results.json").read_text() == "{}"


def test_an_output_path_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        engine.plan(engine.Options(out=tmp_path / "file"))


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = engine.Lock(tmp_path / engine.LOCK_FILE, "run-one")
    first.acquire()
    second = engine.Lock(tmp_path / engine.LOCK_FILE, "run-two")
    with pytest.raises(UsageError, match=f"in use by run run-one \\(pid {os.getpid()}\\)"):
        second.acquire()
    first.release()
    second.acquire()
    assert json.loads((tmp_path / engine.LOCK_FILE).read_text())["run_id"] == "run-two"
    second.release()
    assert not (tmp_path / engine.LOCK_FILE).exists()


def test_the_lock_of_a_dead_run_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"run_id": "killed", "pid": int(dead.stdout), "host": socket.gethostname()}
    (tmp_path / engine.LOCK_FILE).write_text(json.dumps(stale))
    lock = engine.Lock(tmp_path / engine.LOCK_FILE, "mine")
    lock.acquire()
    assert json.loads((tmp_path / engine.LOCK_FILE).read_text())["run_id"] == "mine"


def test_options_are_declared_once_for_both_front_ends() -> None:
    flags = {o.flag for o in engine.OPTIONS}
    assert {"--server", "--client", "--scenario", "--tls", "--impl", "--out", "--jobs", "--capture"} <= flags
    capture = next(o for o in engine.OPTIONS if o.dest == "capture")
    assert capture.pytest_flag == "--capture-pcap"  # pytest owns --capture
    values = {"servers": ["a"], "jobs": 3, "out": "x", "capture": True, "impls": ["rel"]}
    options = engine.Options.from_values(values)
    assert (options.servers, options.jobs, options.capture) == (("a",), 3, True)
    assert options.impls == (Path("rel").resolve(),)


def test_junit_has_one_testcase_per_cell_with_failures_explained(tmp_path: Path) -> None:
    found = toy_registry(tmp_path / "impls")
    cells = plan(found, scenario_ids=["trusted-client", "revoked-client-cert"], tls=["1.3"], clients=["toy"])
    results = [CellResult(cell, "unsupported" if cell.unsupported else "timeout") for cell in cells]
    engine.write_junit(tmp_path / "junit.xml", results)
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()[0]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "1")
    failure = suite.find("testcase[@name='toy-server--toy-client--trusted-client--tls1.3']/failure")
    assert failure is not None and failure.get("message") == "expected ok, observed timeout"
