"""run_cells without Docker: order within a server, parallelism across servers, errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.cells import Cell, plan
from harness.errors import HarnessError
from harness.pods import Run
from harness.registry import Registry
from harness.results import CellResult
from harness.runner import Runner
from tests.stacks import toy_registry


def offline_run(out: Path) -> Run:
    """A real Run whose Docker client points at no engine: making it touches nothing, and a
    test that reached for a container would fail at once instead of making one."""
    client = docker.DockerClient(base_url=f"unix://{out}/no-docker-here.sock", version="1.41")
    return Run(client, out / "run", out / "certs")


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Run]:
    run = offline_run(tmp_path)
    yield run
    run.client.close()


class FakeRunner(Runner):
    """The real Runner's scheduling over a throwaway registry; ``run_cell`` records instead of execs."""

    def __init__(self, registry: Registry, run: Run) -> None:
        super().__init__(run, registry)
        self.order: list[str] = []
        self.active: dict[Any, int] = {}
        self.peak_same_server = 0
        self.threads: set[int] = set()
        self._guard = threading.Lock()

    def server_for(self, cell: Cell) -> Any:  # the starter thread's call: no server process here
        return None

    def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
        key = self.server_key(cell)
        with self._guard:
            self.active[key] = self.active.get(key, 0) + 1
            self.peak_same_server = max(self.peak_same_server, self.active[key])
            self.threads.add(threading.get_ident())
            self.order.append(cell.id)
        time.sleep(0.002)  # hold the cell open so that overlaps would show
        with self._guard:
            self.active[key] -= 1
        if cell.scenario.id == "wrong-hostname" and cell.client == "other":
            raise HarnessError("server did not start")
        return CellResult(cell, cell.expected.verdict)


@pytest.fixture
def toy(tmp_path: Path) -> Registry:
    return toy_registry(tmp_path)


class Overlapping(FakeRunner):
    """The first cell waits (5 s at most) until a second worker has a cell: on a loaded
    machine one worker could otherwise run every group before the others start."""

    def __init__(self, registry: Registry, run: Run) -> None:
        super().__init__(registry, run)
        self.second = threading.Event()
        self.entered = 0

    def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
        with self._guard:
            self.entered += 1
            first = self.entered == 1
            if not first:
                self.second.set()
        if first:
            self.second.wait(5)
        return super().run_cell(cell, defer_wire)


def test_cells_of_one_server_never_overlap_and_keep_their_order(toy: Registry, offline: Run) -> None:
    cells = plan(toy, scenario_ids=["trusted-client", "no-client-cert", "wrong-hostname"])
    runner = Overlapping(toy, offline)
    done: list[str] = []
    results = runner.run_cells(cells, jobs=6, on_done=lambda r: done.append(r.cell.id))
    assert set(results) == {c.id for c in cells} == set(done)
    assert runner.peak_same_server == 1
    assert len(runner.threads) > 1
    for key in {runner.server_key(c) for c in cells}:
        mine = [c.id for c in cells if runner.server_key(c) == key]
        assert [i for i in runner.order if i in mine] == mine


def test_a_harness_error_is_a_failed_cell_not_a_crash(toy: Registry, offline: Run) -> None:
    cells = plan(toy, scenario_ids=["wrong-hostname"], clients=["other"], servers=["toy"], tls=["1.3"])
    (result,) = FakeRunner(toy, offline).run_cells(cells, jobs=2).values()
    assert result.observed == "harness-error:server did not start"
    assert not result.passed


def test_jobs_one_runs_everything_on_one_thread(toy: Registry, offline: Run) -> None:
    runner = FakeRunner(toy, offline)
    runner.run_cells(plan(toy, scenario_ids=["trusted-client"]), jobs=1)
    assert len(runner.threads) == 1


def test_an_interrupt_stops_handing_out_cells(toy: Registry, offline: Run) -> None:
    class Interrupted(FakeRunner):
        def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
            if len(self.order) == 3:
                raise KeyboardInterrupt
            return super().run_cell(cell, defer_wire)

    runner = Interrupted(toy, offline)
    with pytest.raises(KeyboardInterrupt):
        runner.run_cells(plan(toy), jobs=1)
    assert len(runner.order) == 3


def test_a_cells_capture_window_starts_after_the_previous_cells_marker(
    toy: Registry, tmp_path: Path, offline: Run
) -> None:
    """The capture file grows in buffered bursts: when the second cell starts, the follower
    may not yet hold the first cell's packets, so "the length at start" is no boundary.
    The first cell's marker is: the second cell's window must not take the first's
    connection (it once did, and a require-mode cell showed its neighbour's alert)."""
    from harness import capture
    from tests.test_capture import GLOBAL, MARK, frame, record

    first, second = plan(toy, scenario_ids=["trusted-client", "no-client-cert"], tls=["1.3"], clients=["toy"])[:2]
    frames = [
        frame(41000, 10000, flags=0x02),  # 0: the first cell's SYN
        frame(10000, 41000, flags=0x12),  # 1
        frame(5000, 9, udp_payload=MARK + first.id.encode()),  # 2: the first cell's end
        frame(42000, 10000, flags=0x02),  # 3: the second cell's SYN
        frame(10000, 42000, flags=0x12),  # 4
        frame(5000, 9, udp_payload=MARK + second.id.encode()),  # 5
    ]
    path = tmp_path / "pod.pcap"
    path.write_bytes(GLOBAL + b"".join(record(f) for f in frames))
    follower = capture.PcapFollower(path)
    runner = Runner(offline, toy)  # _cut needs no containers
    cut: list[list[int]] = []
    for cell in (first, second):
        outcome = CellResult(cell, "")
        outcome.artifacts = {"dir": str(tmp_path / cell.id)}
        (tmp_path / cell.id).mkdir()
        # Both cells saw an empty file when they started: the lag the window must survive.
        _pcap, packets = runner._cut(outcome, follower, 0, 10000)
        cut.append([p.src_port if p.dst_port == 10000 else p.dst_port for p in packets])
    assert cut == [[41000, 41000], [42000, 42000]]


def test_the_pytest_order_follows_the_runners_groups_also_for_fresh_process_servers(tmp_path: Path) -> None:
    """The scenario tests wait for their cells in this order: when it ignored a server's
    fresh_process (one group per cell, run last), a test waited for the whole matrix."""
    from harness.cells import schedule, schedule_order, server_key
    from tests.stacks import TOY_SERVER, write_impl

    write_impl(tmp_path / "a", "toy", TOY_SERVER)
    write_impl(
        tmp_path / "b",
        "fresh",
        TOY_SERVER.replace('name = "toy"', 'name = "fresh"').replace(
            "[server]\n", "[server]\nfresh_process = true\n", 1
        ),
    )
    found = Registry(tuple(registry_load(tmp_path / d) for d in ("a", "b")))
    cells = plan(found, scenario_ids=["trusted-client", "no-client-cert", "expired-client-cert"])

    def key(cell: Cell) -> Any:
        return server_key(found, cell)

    assert schedule_order(cells, found) == [c for group in schedule(cells, key) for c in group]
    fresh = [c for c in schedule_order(cells, found) if c.server == "fresh"]
    assert fresh and all(key(c)[3] == c.id for c in fresh)


def registry_load(folder: Path) -> Any:
    from harness import registry

    (impl,) = registry.load(folder=folder).impls
    return impl


def test_a_scenario_of_several_requests_runs_them_first_on_its_own_server(
    toy: Registry, tmp_path: Path, offline: Run
) -> None:
    from types import SimpleNamespace

    from harness.pods import ExecResult

    (cell,) = [c for c in plan(toy, scenario_ids=["intermediate-cache"], tls=["1.2"]) if c.client == "toy"]
    runner = FakeRunner(toy, offline)
    runner.path_in = lambda relative: f"/certs/{relative}"  # type: ignore[method-assign]
    ran: list[tuple[str, tuple[str, ...]]] = []
    # What the pod's /proc/net/tcp shows after the first request: the server's side of its
    # connection in CLOSE_WAIT (the client gone, the server still draining), then closed.
    tables = [TCP_HEAD + CLOSE_WAIT_ON_10000, TCP_HEAD + LISTEN_ON_10000 + TIME_WAIT_FROM_10000]

    def execute(client: str, argv: tuple[str, ...], **_kw: object) -> ExecResult:
        ran.append((client, argv))
        if argv[0] == "cat":
            return ExecResult(argv, 0, tables.pop(0).encode(), b"", 0.01)
        return ExecResult(argv, 0, b"first body\n", b"", 0.01)

    server = SimpleNamespace(pod=SimpleNamespace(exec=execute), port=10000)
    runner._before(cell, server, "https://localhost:10000", tmp_path)  # type: ignore[arg-type]
    # The good chain first, by the cell's own client, against the same URL ...
    (client, argv), *waits = ran
    assert client == "toy" and "/certs/alternate-tls-certs/localhost-client-chain.pem" in argv
    assert (tmp_path / "before-1.stdout").read_bytes() == b"first body\n"
    assert (tmp_path / "before-1.exit").read_text() == "0\n"
    # ... then until the server has closed that connection: asked twice, the second closed.
    assert [w[1][0] for w in waits] == ["cat", "cat"] and not tables
    assert not (tmp_path / "before-1.still-open").exists()
    # ... and the cell has a server process of its own, unlike a one-request scenario
    # with the same server configuration.
    (single,) = [c for c in plan(toy, scenario_ids=["leaf-without-intermediate"], tls=["1.2"]) if c.client == "toy"]
    assert cell.scenario.server == single.scenario.server
    assert runner.server_key(cell)[-1] == cell.id and runner.server_key(single)[-1] == ""


TCP_HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
LISTEN_ON_10000 = "   0: 00000000:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
CLOSE_WAIT_ON_10000 = "   1: 0100007F:2710 0100007F:B0C2 08 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
TIME_WAIT_FROM_10000 = "   2: 0100007F:2710 0100007F:B0C4 06 00000000:00000000 03:00000F9C 00000000  0  0 0 3\n"
ESTABLISHED_TO_10000 = "   3: 0100007F:B0C6 0100007F:2710 01 00000000:00000000 00:00000000 00000000  0  0 4 1\n"
ESTABLISHED_ON_10001_V6 = (
    "   0: 0000000000000000FFFF00000100007F:2711 0000000000000000FFFF00000100007F:B0C8 01 "
    "00000000:00000000 00:00000000 00000000     0        0 5 1\n"
)


def test_open_connections_are_the_servers_unclosed_sockets_on_its_port() -> None:
    from harness.runner import open_on_port

    assert open_on_port(TCP_HEAD + LISTEN_ON_10000, 10000) == 0
    assert open_on_port(TCP_HEAD + CLOSE_WAIT_ON_10000, 10000) == 1
    assert open_on_port(TCP_HEAD + TIME_WAIT_FROM_10000, 10000) == 0  # closed by the server
    assert open_on_port(TCP_HEAD + ESTABLISHED_TO_10000, 10000) == 0  # a client's socket, not the server's
    assert open_on_port(TCP_HEAD + ESTABLISHED_ON_10001_V6, 10001) == 1
    assert open_on_port(TCP_HEAD + ESTABLISHED_ON_10001_V6, 10000) == 0
    assert open_on_port("cat: /proc/net/tcp6: No such file or directory\n", 10000) == 0


def test_an_earlier_request_still_open_after_the_wait_is_written_beside_the_cell(
    toy: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: Run
) -> None:
    from types import SimpleNamespace

    from harness import runner as runner_module
    from harness.pods import ExecResult

    monkeypatch.setattr(runner_module, "CLOSED_WAIT_S", 0.05)
    (cell,) = [c for c in plan(toy, scenario_ids=["intermediate-cache"], tls=["1.2"]) if c.client == "toy"]
    runner = FakeRunner(toy, offline)
    runner.path_in = lambda relative: f"/certs/{relative}"  # type: ignore[method-assign]

    def execute(client: str, argv: tuple[str, ...], **_kw: object) -> ExecResult:
        out = TCP_HEAD + CLOSE_WAIT_ON_10000 if argv[0] == "cat" else "body\n"
        return ExecResult(argv, 0, out.encode(), b"", 0.01)

    server = SimpleNamespace(pod=SimpleNamespace(exec=execute), port=10000)
    runner._before(cell, server, "https://localhost:10000", tmp_path)  # type: ignore[arg-type]
    note = (tmp_path / "before-1.still-open").read_text()
    assert note.startswith("1 connection(s) to port 10000 still open on the server's side after 0.05 s")


def test_a_server_that_exits_127_at_start_makes_its_cells_unsupported_with_its_reason(
    toy: Registry, tmp_path: Path, offline: Run
) -> None:
    from harness.pods import ServerUnsupported

    class Refusing(FakeRunner):
        def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
            raise ServerUnsupported("server-mtls: unsupported: --root-ca with more than 16 certificates")

    cells = plan(toy, scenario_ids=["trusted-client"], tls=["1.2"])
    results = Refusing(toy, offline).run_cells(cells, jobs=1)
    for result in results.values():
        assert (result.status, result.observed) == ("unsupported", "unsupported")
        assert result.reason == result.native == "server-mtls: unsupported: --root-ca with more than 16 certificates"
        assert not result.passed  # it did not run: unsupported, neither passed nor failed
        written = json.loads((Path(result.artifacts["dir"]) / "cell.json").read_text())
        assert (written["status"], written["passed"], written["reason"]) == ("unsupported", False, result.reason)


class StartingRunner(FakeRunner):
    """Records when each server process is started and by whom (the starter or a worker)."""

    def __init__(self, registry: Registry, run: Run, failing: str = "") -> None:
        super().__init__(registry, run)
        self.started: dict[Any, str] = {}
        self.attempts: dict[Any, int] = {}
        self.failing = failing

    def server_for(self, cell: Cell) -> Any:  # the real one's bookkeeping, without containers
        key = self.server_key(cell)
        with self._guard:
            if key in self._start_errors:
                raise self._start_errors[key]
            if key not in self.started:
                self.attempts[key] = self.attempts.get(key, 0) + 1
                if cell.scenario.id == self.failing:
                    raise HarnessError(f"server for {cell.scenario.id} did not start")
                self.started[key] = threading.current_thread().name
        return None

    def run_cell(self, cell: Cell, defer_wire: bool = False) -> CellResult:
        self.server_for(cell)
        time.sleep(0.01)  # the workers are busy while the starter works ahead
        return super().run_cell(cell, defer_wire)


def test_servers_start_ahead_of_the_workers_that_need_them(toy: Registry, offline: Run) -> None:
    """SPEC §11: server start-up off the critical path. With more server processes than
    workers, a starter thread brings up the next ones while the workers run cells."""
    cells = plan(toy, scenario_ids=["trusted-client", "no-client-cert", "untrusted-client-ca", "wrong-hostname"])
    runner = StartingRunner(toy, offline)
    results = runner.run_cells(cells, jobs=2)
    assert len(results) == len(cells)
    by_starter = [key for key, who in runner.started.items() if who == "starter"]
    assert len(runner.started) > 2 and by_starter, runner.started


def test_a_server_the_starter_could_not_start_fails_its_cells_as_if_the_worker_had_tried(
    toy: Registry, offline: Run
) -> None:
    cells = plan(toy, scenario_ids=["trusted-client", "no-client-cert", "untrusted-client-ca", "wrong-hostname"])
    runner = StartingRunner(toy, offline, failing="wrong-hostname")
    results = runner.run_cells(cells, jobs=2)
    failed = [r for r in results.values() if r.cell.scenario.id == "wrong-hostname" and not r.cell.why_unsupported]
    assert failed and all(r.observed == "harness-error:server for wrong-hostname did not start" for r in failed)
    assert all(r.passed for r in results.values() if r.cell.scenario.id != "wrong-hostname")
    # Each failing start was tried once: a worker meets the starter's error, it does not try again.
    failing_keys = {runner.server_key(r.cell) for r in failed}
    assert {runner.attempts[key] for key in failing_keys} == {1}
