"""Nothing labelled is left behind: after a failing session, after Ctrl-C, after a kill.

Each test runs an inner pytest session that opens a real run (pods and a network),
then ends it the hard way, and looks for the run's containers and networks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import engine, images, registry
from harness.cells import plan
from harness.pods import RUN_LABEL, leftovers, remove_labelled, sweep_stale

pytestmark = pytest.mark.docker

INNER = """
import time
from collections.abc import Iterator
from pathlib import Path

def test_inner(harness):
    pod = harness.run.pod("node", purpose="inner")
    pod.client("curl")
    Path({marker!r}).write_text(harness.run.run_id)
    {body}
"""


def ignore_sigint() -> None:
    """What a shell does for a background job (``cmd &``) or nohup: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


STARTED: list[tuple[subprocess.Popen[str], Path]] = []


@pytest.fixture(autouse=True)
def nothing_left_even_if_a_test_fails() -> Iterator[None]:
    """Whatever a test here does or fails to do, its inner sessions end and their runs go."""
    yield
    client = images.connect()
    while STARTED:
        process, marker = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)
        if marker.exists():
            remove_labelled(client, {RUN_LABEL: marker.read_text()})


def start_inner(tmp_path: Path, body: str, sigint_ignored: bool = False) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "run-id"
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER.format(marker=str(marker), body=body))
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "harness.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--rootdir={tmp_path}",
        "-c",
        os.devnull,
        f"--out={tmp_path / 'out'}",
        str(test_file),
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )
    STARTED.append((process, marker))
    return process, marker


def wait_for_run(process: subprocess.Popen[str], marker: Path) -> str:
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(
                f"inner session ended early ({process.returncode}):\n{process.stdout.read() if process.stdout else ''}"
            )
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("inner session did not start a run within 120 s")
        time.sleep(0.1)
    return marker.read_text()


def test_failing_session_leaves_nothing(tmp_path: Path) -> None:
    process, marker = start_inner(tmp_path, 'assert False, "deliberate failure"')
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 1, output
    assert "deliberate failure" in output
    run_id = marker.read_text()
    assert leftovers(images.connect(), run_id) == []


def test_ctrl_c_leaves_nothing_even_when_the_shell_ignored_it(tmp_path: Path) -> None:
    process, marker = start_inner(tmp_path, "time.sleep(600)", sigint_ignored=True)
    run_id = wait_for_run(process, marker)
    client = images.connect()
    assert leftovers(client, run_id), "the inner run should have containers before Ctrl-C"
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert leftovers(client, run_id) == []


def test_sigterm_leaves_nothing(tmp_path: Path) -> None:
    process, marker = start_inner(tmp_path, "time.sleep(600)")
    run_id = wait_for_run(process, marker)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    assert leftovers(images.connect(), run_id) == []


def test_killed_session_is_swept_by_the_next_run(tmp_path: Path) -> None:
    process, marker = start_inner(tmp_path, "time.sleep(600)")
    run_id = wait_for_run(process, marker)
    process.kill()
    process.communicate(timeout=60)
    client = images.connect()
    assert leftovers(client, run_id), "SIGKILL gives no chance to clean up"
    assert run_id in sweep_stale(client)
    assert leftovers(client, run_id) == []


def test_the_cli_interrupted_by_repeated_ctrl_c_keeps_its_results_and_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C pressed five times 0.2 s apart, by a user whose shell ignored SIGINT: the
    cells that finished are written (run.interrupted), cleanup is not cut short, one
    line says so, exit 130, and the output folder's lock is released."""
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "matrix", "--jobs", "2", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore_sigint,
    )
    STARTED.append((process, tmp_path / "no-marker"))
    deadline = time.monotonic() + 300
    while len(list((out / "cells").glob("*/cell.json"))) < 4:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no cell finished within 300 s"
        time.sleep(0.1)
    for _ in range(5):
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
    _stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("mtls-harness:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "finished cell(s)" in lines[0], stderr
    assert "Traceback" not in stderr, stderr
    document = json.loads((out / "results.json").read_text())
    assert document["run"]["interrupted"] is True
    assert 4 <= len(document["cells"]) < len(plan(registry.default()))
    assert (out / "junit.xml").is_file() and (out / "report.html").is_file()
    assert leftovers(images.connect(), document["run"]["run_id"]) == []
    # The lock is released: its file stays, empty, and the next run takes it (engine.Lock).
    assert (out / ".mtls-harness.lock").read_text() == ""
    lock = engine.Lock(out / ".mtls-harness.lock", "next")
    lock.acquire()
    lock.release()


def test_clean_keeps_a_run_still_going_and_removes_a_killed_one(tmp_path: Path) -> None:
    """`mtls-harness clean` during another run must not pull its containers away, and
    the next run's sweep must not either; a killed run's are removed."""
    (tmp_path / "alive").mkdir()
    (tmp_path / "killed").mkdir()
    alive, alive_marker = start_inner(tmp_path / "alive", "time.sleep(600)")
    killed, killed_marker = start_inner(tmp_path / "killed", "time.sleep(600)")
    try:
        alive_id = wait_for_run(alive, alive_marker)
        killed_id = wait_for_run(killed, killed_marker)
        killed.kill()
        killed.communicate(timeout=60)
        client = images.connect()
        assert alive_id not in sweep_stale(client)
        cleaned = subprocess.run(
            [sys.executable, "-m", "harness", "clean"], capture_output=True, text=True, timeout=120
        )
        assert cleaned.returncode == 0, cleaned.stderr
        assert "still going" in cleaned.stdout and alive_id in cleaned.stdout, cleaned.stdout
        assert leftovers(client, killed_id) == []
        assert leftovers(client, alive_id), "the live run's containers were removed"
    finally:
        alive.send_signal(signal.SIGTERM)
        alive.communicate(timeout=120)
    assert leftovers(images.connect(), alive_id) == []
