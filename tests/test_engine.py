"""The engine without Docker: options checked before anything happens, the output lock, junit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import engine, liveness
from harness.errors import UsageError


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
    assert (tmp_path / engine.LOCK_FILE).read_text() == ""  # left in place, empty: see engine.Lock


def holder(lock_file: Path, run_id: str) -> subprocess.Popen[str]:
    """Another harness process holding ``lock_file`` until killed."""
    code = (
        "import sys, time; from pathlib import Path; from harness import engine; "
        f"engine.Lock(Path({str(lock_file)!r}), {run_id!r}).acquire(); print('held', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_the_lock_of_a_killed_run_is_free_and_a_live_runs_is_not(tmp_path: Path) -> None:
    """The lock is an flock: the kernel frees it when its process dies, however it dies
    (no pid judging), and a live holder, in any pid namespace of this kernel, keeps it."""
    lock_file = tmp_path / engine.LOCK_FILE
    live = holder(lock_file, "theirs")
    try:
        with pytest.raises(UsageError, match=f"in use by run theirs \\(pid {live.pid}\\)"):
            engine.Lock(lock_file, "mine").acquire()
    finally:
        live.kill()
        live.communicate()
    lock = engine.Lock(lock_file, "mine")
    lock.acquire()
    assert json.loads(lock_file.read_text())["run_id"] == "mine"
    lock.release()


def test_liveness_judges_only_what_it_can_see() -> None:
    me = liveness.this_process()
    assert not liveness.gone(me)
    assert liveness.gone({**me, "started": "1"})  # our pid, another process start: reused
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert liveness.gone({**me, "pid": dead.stdout.strip(), "started": "5"})
    assert not liveness.gone({"pid": dead.stdout.strip(), "host": me["host"]})  # an older run's labels
    assert liveness.gone({**me, "pid": dead.stdout.strip(), "boot": "another-boot"})  # this machine rebooted
    assert not liveness.gone({**me, "pid": dead.stdout.strip(), "pidns": "pid:[1]"})  # another sandbox's


def test_a_zombie_harness_is_gone() -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while liveness._stat(child.pid)[0] != "Z":  # exited, not yet waited for
            assert time.monotonic() < deadline
            time.sleep(0.01)
        zombie = {**liveness.this_process(), "pid": str(child.pid), "started": liveness._start_time(child.pid)}
        assert liveness.gone(zombie) and liveness.judged(zombie) == "gone"
    finally:
        child.wait()


def test_options_are_declared_once_for_both_front_ends() -> None:
    flags = {o.flag for o in engine.OPTIONS}
    assert {"--server", "--client", "--scenario", "--tls", "--impl", "--out", "--jobs", "--capture"} <= flags
    capture = next(o for o in engine.OPTIONS if o.dest == "capture")
    assert capture.pytest_flag == "--capture-pcap"  # pytest owns --capture
    values = {"servers": ["a"], "jobs": 3, "out": "x", "capture": True, "impls": ["rel"]}
    options = engine.Options.from_values(values)
    assert (options.servers, options.jobs, options.capture) == (("a",), 3, True)
    assert options.impls == (Path("rel").resolve(),)


def test_pytest_own_capture_option_does_not_turn_on_the_packet_capture(pytestconfig: pytest.Config) -> None:
    """pytest's ``--capture=fd`` is a true value under the name ``capture``: the scenario
    session read it as ours once, and every pytest matrix ran with the capture sidecar.
    This session is a pytest session with the plugin loaded (conftest.py), run without
    ``--capture-pcap``."""
    from harness import pytest_plugin

    assert pytestconfig.getoption("capture") in ("fd", "sys", "no", "tee-sys")
    assert pytestconfig.getoption("--capture-pcap") is False
    assert pytest_plugin.options_from(pytestconfig).capture is False


def test_a_container_removed_while_listing_does_not_end_a_run() -> None:
    """docker-py lists ids, then inspects each: another run's container removed in between
    answers 404. Seen with two runs at once; the harness's listings skip it."""
    import docker
    from docker.models.containers import ContainerCollection
    from docker.models.networks import NetworkCollection

    from harness import pods

    class Api:
        def containers(self, **_kw: object) -> list[dict[str, str]]:
            return [{"Id": "kept"}, {"Id": "gone"}]

        def inspect_container(self, container_id: str) -> dict[str, object]:
            if container_id == "gone":
                raise docker.errors.NotFound("No such container: gone")
            labels = {pods.LABEL: "1", pods.RUN_LABEL: "r1"}
            return {"Id": container_id, "Name": "/kept", "Config": {"Labels": labels}}

        def networks(self, **_kw: object) -> list[dict[str, str]]:
            return []

    class Client:
        api = Api()

        @property
        def containers(self) -> ContainerCollection:
            return ContainerCollection(client=self)

        @property
        def networks(self) -> NetworkCollection:
            return NetworkCollection(client=self)

    assert pods.leftovers(Client()) == ["container kept"]  # type: ignore[arg-type]
    assert pods.stale_runs(Client()) == set()  # type: ignore[arg-type]  # r1 has no liveness labels
