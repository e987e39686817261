"""Nothing labelled is left behind: after a failing session, after Ctrl-C, after a kill.

Each test runs an inner pytest session that opens a real run (pods and a network),
then ends it the hard way, and looks for the run's containers and networks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import images
from harness.pods import leftovers, sweep_stale

pytestmark = pytest.mark.docker

INNER = """
import time
from pathlib import Path

def test_inner(harness):
    pod = harness.run.pod("node", purpose="inner")
    pod.client("curl")
    Path({marker!r}).write_text(harness.run.run_id)
    {body}
"""


def start_inner(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], Path]:
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
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
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


def test_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    process, marker = start_inner(tmp_path, "time.sleep(600)")
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
