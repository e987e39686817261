"""The client agent without Docker: its bash loop runs here, on the host, as in a container."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import agent
from harness.agent import Agent
from harness.errors import HarnessError


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Agent]:
    folder = tmp_path / "agent"
    started = Agent(folder)
    process = subprocess.Popen(["bash", str(folder / "agent.sh"), str(folder)], stdin=subprocess.DEVNULL)
    try:
        assert started.wait_ready(5), "the agent never said ready"
        yield started
    finally:
        process.kill()
        process.wait()
        started.close()


def test_a_request_is_a_fresh_process_with_its_own_output_and_status(running: Agent, tmp_path: Path) -> None:
    code, out, err, seconds = running.run(["sh", "-c", 'echo "$$ $0"; echo oops >&2; exit 7', "x y"], 5)
    assert (code, err) == (7, b"oops\n")
    assert out.decode().split()[1:] == ["x", "y"]
    assert 0 <= seconds < 5
    again = running.run(["sh", "-c", "echo $$"], 5)[1]
    assert again.split()[0] != out.split()[0]  # another process
    assert sorted(p.name for p in running.folder.iterdir()) == ["agent.sh", "done", "requests"]  # tidied


def test_arguments_environment_and_folder_arrive_exactly(running: Agent, tmp_path: Path) -> None:
    tricky = ["it's", '"quoted"', "$HOME", "a b", "", "*", "\\n"]
    code, out, _err, _s = running.run(
        ["python3", "-c", "import sys, os, json; print(json.dumps([sys.argv[1:], os.getcwd(), os.environ['K']]))"]
        + tricky,
        5,
        workdir=str(tmp_path),
        environment={"K": "v'al ue$"},
    )
    assert code == 0
    assert json.loads(out) == [tricky, str(tmp_path), "v'al ue$"]


def test_the_limit_is_enforced_like_docker_exec_was(running: Agent) -> None:
    code, _out, _err, seconds = running.run(["sleep", "30"], 0.5)
    assert code == 124 and seconds < 5


def test_requests_run_at_the_same_time(running: Agent) -> None:
    results: list[float] = []

    def one() -> None:
        results.append(running.run(["sleep", "0.5"], 5)[3])

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and max(results) < 2.5  # not 6 × 0.5 s one after another


def test_the_capture_marker_follows_the_client(running: Agent) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        port = listener.getsockname()[1]
        code = running.run(["true"], 5, marker=b"mtls-harness-marker:cell-1", marker_port=port)[0]
        assert code == 0
        assert listener.recv(100) == b"mtls-harness-marker:cell-1"


def test_a_silent_agent_is_a_clear_error_not_a_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "GRACE_S", 0.2)
    silent = Agent(tmp_path / "silent")  # no bash loop behind it (a paused container)
    try:
        assert not silent.wait_ready(0.1)
        with pytest.raises(HarnessError, match="did not answer within"):
            silent.run(["true"], 0.1)
    finally:
        silent.close()


def test_the_client_does_not_inherit_the_agents_fifos(running: Agent) -> None:
    probe = "import os; print([fd for fd in (3, 4) if os.path.exists(f'/proc/self/fd/{fd}')])"
    code, out, _err, _s = running.run(["python3", "-c", probe], 5)
    assert (code, out) == (0, b"[]\n")  # neither FIFO, as under docker exec


def test_a_stray_line_on_the_done_fifo_does_not_stop_the_reader(running: Agent) -> None:
    from harness.agent import _Waiting

    waiting = running._waiting["r999"] = _Waiting()
    for words in (["r999", "--5"], ["r999", "x"], ["garbage"], []):
        running._dispatch(words)  # once crashed the reader thread: int("--5")
    assert not waiting.event.is_set()
    del running._waiting["r999"]
    with open(running.folder / "done", "w") as done:
        done.write("r1 --5\ngarbage\n\n")
    assert running.run(["true"], 5)[0] == 0


def test_closing_ends_the_requests_still_waiting_at_once(tmp_path: Path) -> None:
    silent = Agent(tmp_path / "silent")
    errors: list[str] = []

    def waiter() -> None:
        try:
            silent.run(["sleep", "5"], 30)
        except HarnessError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=waiter)
    thread.start()
    import time

    time.sleep(0.2)
    started = time.monotonic()
    silent.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert errors and "closed before sleep ended" in errors[0]
