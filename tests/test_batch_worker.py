"""The batch worker protocol without Docker (images/CONTRACT.md, "Batch workers").

The Python client's worker (images/python/request_batch.py) runs here on the host, with a
stand-in ``request_mtls`` module, so that what the harness's side (harness/agent.py with
``batch=True``) and the worker agree on is tested: argv, environment, working folder,
exit status, the limit, concurrent requests, and a worker that ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import agent
from harness.agent import Agent
from harness.errors import HarnessError
from harness.registry import BatchSpec

WORKER = Path(__file__).resolve().parent.parent / "images" / "python" / "request_batch.py"

STAND_IN = """
import os, sys, time
def main(argv):
    if argv and argv[0] == "sleep":
        time.sleep(float(argv[1]))
    print("argv", argv, "pid", os.getpid(), "cwd", os.getcwd(), "env", os.environ.get("MTLS_X", ""))
    sys.stderr.write("to stderr\\n")
    if argv and argv[0] == "raise":
        raise RuntimeError("boom")
    return int(argv[0]) if argv and argv[0].isdigit() else 0
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[Agent, subprocess.Popen[bytes]]]:
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(WORKER, code / "request_batch.py")
    (code / "request_mtls.py").write_text(STAND_IN)
    folder = tmp_path / "agent" / agent.BATCH
    started = Agent(folder, batch=True)
    process = subprocess.Popen(
        [sys.executable, str(code / "request_batch.py"), str(folder)], stdin=subprocess.DEVNULL, cwd=code
    )
    try:
        assert started.wait_ready(5), "the worker never said ready"
        yield started, process
    finally:
        process.kill()
        process.wait()
        started.close()


def test_a_request_runs_in_a_fresh_process_with_its_own_argv_env_folder_and_status(
    worker: tuple[Agent, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    running, process = worker
    code, out, err, _ = running.run(["request-mtls", "7", "a b"], 5, str(tmp_path), {"MTLS_X": "yes"})
    assert code == 7 and err == b"to stderr\n"
    words = out.decode()
    assert "['7', 'a b']" in words and f"cwd {tmp_path}" in words and "env yes" in words
    assert f"pid {process.pid} " not in words  # not the worker itself
    again = running.run(["request-mtls"], 5)[1].decode()
    assert again.split("pid ")[1].split()[0] != words.split("pid ")[1].split()[0]  # another process
    assert "env \n" in again  # the first request's environment did not stay


def test_an_uncaught_exception_exits_1_with_its_trace_as_the_program_would(
    worker: tuple[Agent, subprocess.Popen[bytes]],
) -> None:
    code, _, err, _ = worker[0].run(["request-mtls", "raise"], 5)
    assert code == 1 and b"RuntimeError: boom" in err


def test_the_limit_is_timeouts_and_requests_run_at_the_same_time(worker: tuple[Agent, subprocess.Popen[bytes]]) -> None:
    running = worker[0]
    results: list[tuple[int, float]] = []

    def one() -> None:
        code, _, _, seconds = running.run(["request-mtls", "sleep", "1"], 5)
        results.append((code, seconds))

    threads = [threading.Thread(target=one) for _ in range(4)]
    started = time.monotonic()
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    assert [code for code, _ in results] == [0] * 4
    assert time.monotonic() - started < 3.5  # four 1 s requests at once, not one after another
    code, _, _, seconds = running.run(["request-mtls", "sleep", "30"], 0.5)
    assert code == 124 and seconds < 5  # timeout -k 2's status


def test_a_worker_that_ends_fails_its_requests_clearly(worker: tuple[Agent, subprocess.Popen[bytes]]) -> None:
    running, process = worker
    process.kill()
    process.wait()
    # The wrapper the pod starts says "exited N" when the worker ends; here we say it for it.
    fd = os.open(running.folder / "done", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"exited 137\n")
    os.close(fd)
    deadline = time.monotonic() + 5
    while running.exited is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.exited == 137
    with pytest.raises(HarnessError, match="exited with status 137"):
        running.run(["request-mtls"], 1)


def test_a_request_file_holds_one_item_a_line_and_refuses_a_line_break() -> None:
    text = agent.request_file(["node", "request.js", "--url", "https://x"], 20, "/w", {"A": "1"}, b"\x01\x02", 9)
    assert text == ("limit 20\ncwd /w\nenv A=1\nmarker 9 0102\narg node\narg request.js\narg --url\narg https://x\n")
    assert agent.request_file(["node", "a\nb"], 20, None, None, None, 0) is None
    assert agent.request_file(["node"], 20, None, {"A": "x\ny"}, None, 0) is None


def test_a_worker_serves_only_the_programs_its_manifest_names() -> None:
    spec = BatchSpec(("node", "request-batch.js"), (("node", "request-mtls.js"), ("node", "request.js")), "/opt/mtls")
    assert spec.serves(["node", "request-mtls.js", "--cert", "c"])
    assert spec.serves(["node", "request.js"])
    assert not spec.serves(["node", "server.js"]) and not spec.serves(["node"])


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ('batch = "node w.js"', "a table with argv and programs"),
        ('batch = { argv = ["node", "w.js"], programs = [] }', "a list of the one-shot commands it serves"),
        ('batch = { argv = ["node", "w.js"], programs = [["node", "r.js"]], extra = 1 }', "extra"),
    ],
)
def test_a_batch_declaration_that_cannot_be_used_is_one_clear_line(tmp_path: Path, batch: str, problem: str) -> None:
    from harness import registry
    from harness.rules import ManifestError
    from tests.stacks import TOY_SERVER, write_impl

    write_impl(tmp_path, "toy", TOY_SERVER.replace('floor = ["toy-client", "--help"]\n', f'floor = ["t"]\n{batch}\n'))
    with pytest.raises(ManifestError, match=problem):
        registry.load(folder=tmp_path)
