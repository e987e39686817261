"""The pytest front end of the engine: one test per matrix cell, same verdicts as the CLI.

``pytest scenarios`` and ``mtls-harness matrix`` share ``harness.engine``: the same
options (declared once, ``engine.OPTIONS``), the same planning, the same run. The
session opens one ``Engine`` (lock, images, PKI, a labelled ``Run``) on first use and
always closes it, including after Ctrl-C and SIGTERM. The matrix cells run in the
background, ``--jobs`` at once, in the engine's schedule; each test waits for its own
cell only, so pytest's per-test timeout never covers more than one cell.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from harness import capture, engine, registry, report, sampling
from harness.cells import Cell, schedule_order
from harness.errors import HarnessError
from harness.pods import Run
from harness.results import CellResult
from harness.runner import Runner
from harness.scheduling import DRAIN_S, signals_held

DEFAULT_OUT = Path("out/pytest")
#: How long a test waits for its cell beyond the cells scheduled before it (they run in parallel).
WAIT_S = 240.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mtls-harness")
    for option in engine.OPTIONS:
        group.addoption(option.pytest_flag, **option.argparse_kwargs(pytest_front_end=True))
    group.addoption(
        "--parity",
        choices=sampling.CHOICES,
        default=sampling.DEFAULT,
        help="cells the parity tests run a second way: a representative half (sample, the default, "
        "what `make test` runs) or every one (all, `make parity`); see harness/sampling.py",
    )


def options_from(config: pytest.Config) -> engine.Options:
    values = {option.dest: config.getoption(option.pytest_dest) for option in engine.OPTIONS}
    values["out"] = values.get("out") or DEFAULT_OUT
    return engine.Options.from_values(values)


@dataclass
class Session:
    """What the scenario tests share: the engine, its run and runner, the results so far."""

    engine: engine.Engine
    config: pytest.Config
    _events: dict[str, threading.Event] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None
    _wire_runner: Runner | None = None
    _backgrounds: list[Background] = field(default_factory=list)
    closed: bool = False

    @property
    def run(self) -> Run:
        assert self.engine.run is not None
        return self.engine.run

    @property
    def runner(self) -> Runner:
        assert self.engine.runner is not None
        return self.engine.runner

    @property
    def registry(self) -> registry.Registry:
        return self.engine.registry

    def _start(self) -> None:
        """Run every collected cell in the background, in the engine's schedule."""
        cells = self.config.stash.get(_CELLS_KEY, [])
        self._events = {cell.id: threading.Event() for cell in cells}

        def done(result: CellResult) -> None:
            self._events[result.cell.id].set()

        def work() -> None:
            try:
                self.engine.run_cells(cells, done)
            except BaseException as exc:  # handed to the waiting tests
                self._error = exc
            finally:
                for event in self._events.values():
                    event.set()

        self._thread = threading.Thread(target=work, name="matrix", daemon=True)
        self._thread.start()

    def outcome(self, cell: Cell) -> CellResult:
        """The cell's result: the first call starts the collected cells; this waits for one."""
        if self._thread is None:
            self._start()
        event = self._events.get(cell.id)
        if event is None:  # a cell nobody collected: run it here
            result = self.runner.run_cell(cell)
            self.engine.results[cell.id] = result
            return result
        while not event.wait(WAIT_S):
            if self._thread is not None and not self._thread.is_alive():
                break
        if cell.id not in self.engine.results:
            why = f"{type(self._error).__name__}: {self._error}" if self._error else "the matrix stopped"
            raise HarnessError(f"{cell.id} did not run: {why}") from self._error
        return self.engine.results[cell.id]

    def background(self, runner: Runner, cells: list[Cell], share: int = 1) -> Background:
        """Run ``cells`` on a test's own ``runner``, ``--jobs`` at once (divided by
        ``share`` when that many backgrounds run side by side), from the first ``outcome``
        on; each test then waits for its own cell (as the matrix's tests do)."""
        jobs = max(1, self.engine.options.jobs // share)
        started = Background(runner, cells, jobs, self.engine.stop)
        self._backgrounds.append(started)
        return started

    def wire_runner(self) -> Runner:
        """A runner whose pods carry the capture sidecar, for the wire tests."""
        if self._wire_runner is None:
            capture.require_tshark()
            self._wire_runner = Runner(self.run, self.registry, capture=True, purpose="wire")
        return self._wire_runner

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.engine.stop.set()
        try:
            for each in self._backgrounds:
                each.join()
            if self._thread is not None:
                self._thread.join()
            with signals_held():
                self.engine.write()
        finally:
            self.engine.close()


class Background:
    """A test module's cells on its own runner (a parity test's other path), in the background."""

    def __init__(self, runner: Runner, cells: list[Cell], jobs: int, stop: threading.Event):
        self.runner = runner
        self.cells = list(cells)
        self.jobs = jobs
        self.stop = stop
        self.results: dict[str, CellResult] = {}
        self._events = {cell.id: threading.Event() for cell in self.cells}
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def _work(self) -> None:
        def done(result: CellResult) -> None:
            self.results[result.cell.id] = result
            self._events[result.cell.id].set()

        try:
            self.runner.run_cells(self.cells, self.jobs, done, self.stop)
        except BaseException as exc:  # handed to the waiting tests
            self._error = exc
        finally:
            for event in self._events.values():
                event.set()
            # Its pods are done: free their server processes and containers now, not at
            # the end of the session (beside the matrix's they outgrow the machine's memory).
            with contextlib.suppress(Exception):
                self.runner.run.close_pods(self.runner.purpose)

    def outcome(self, cell: Cell) -> CellResult:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="background", daemon=True)
                self._thread.start()
        event = self._events[cell.id]
        while not event.wait(WAIT_S):
            if not self._thread.is_alive():
                break
        if cell.id not in self.results:
            why = f"{type(self._error).__name__}: {self._error}" if self._error else "the run stopped"
            raise HarnessError(f"{cell.id} did not run: {why}") from self._error
        return self.results[cell.id]

    def join(self) -> None:
        """Wait for the running cells to end (the session stops handing out new ones)."""
        if self._thread is not None:
            self._thread.join(DRAIN_S)


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    config.addinivalue_line("markers", "pcap: captures handshakes and inspects them (needs tshark)")
    # SIGTERM takes the same path as Ctrl-C, so the run's finally blocks remove its containers;
    # Ctrl-C works even when the shell that started pytest ignored it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
            signal.signal(signal.SIGTERM, _sigterm)


def planned(config: pytest.Config) -> tuple[registry.Registry, list[Cell]]:
    """The session's implementations and cells, planned once."""
    found = config.stash.get(_PLAN_KEY, None)
    if found is None:
        try:
            found = engine.plan(options_from(config))
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from exc
        config.stash[_PLAN_KEY] = found
    return found


def parity_cells(config: pytest.Config, cells: list[Cell], found: registry.Registry) -> list[Cell]:
    """The cells a parity test compares, as ``--parity`` chooses (harness.sampling)."""
    return sampling.choose(cells, found, config.getoption("parity"))


def raced(a: CellResult, b: CellResult) -> bool:
    """Two runs of one cell that ended in different outcomes of a race its stack declares
    (SPEC §14): both are the stack's own, so a parity test compares nothing more of them.
    Outside the declared outcomes this is False, and the comparison fails as it should."""
    outcomes = set(a.cell.expected.verdicts)
    return a.observed != b.observed and bool(a.cell.expected.also) and {a.observed, b.observed} <= outcomes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" not in metafunc.fixturenames:
        return
    _registry, cells = planned(metafunc.config)
    wanted = getattr(metafunc.module, "SCENARIOS", None)
    if wanted is not None:
        cells = [c for c in cells if c.scenario.id in wanted]
    metafunc.parametrize("cell", cells, ids=[c.id for c in cells])


_SESSION_KEY = pytest.StashKey[Session]()
_CELLS_KEY = pytest.StashKey[list[Cell]]()
_PLAN_KEY = pytest.StashKey[tuple[registry.Registry, list[Cell]]]()


def _cell_of(item: pytest.Item) -> Cell | None:
    callspec = getattr(item, "callspec", None)
    cell = callspec.params.get("cell") if callspec is not None else None
    return cell if isinstance(cell, Cell) else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Matrix tests in the order their cells run, so each one waits only for its own cell."""
    cells = [cell for item in items if (cell := _cell_of(item)) is not None]
    if not cells:
        return
    found, _planned = planned(config)
    order = {cell.id: n for n, cell in enumerate(schedule_order(cells, found))}
    first = next(i for i, item in enumerate(items) if _cell_of(item) is not None)
    matrix_items = sorted((i for i in items if _cell_of(i) is not None), key=lambda i: order[_cell_of(i).id])  # type: ignore[union-attr]
    others = [i for i in items if _cell_of(i) is None]
    items[:] = others[:first] + matrix_items + others[first:]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember the matrix cells left after -k and friends, to run them together."""
    cells = [cell for item in session.items if (cell := _cell_of(item)) is not None]
    session.config.stash[_CELLS_KEY] = cells


def _say(config: pytest.Config) -> engine.Say:
    """Print past pytest's output capture: which base route ran, which image is built."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[images] {line}")
        else:
            print(f"[images] {line}", flush=True)

    return say


@pytest.fixture(scope="session")
def harness(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The Docker side of the session, created on first use and always closed."""
    config = request.config
    planned(config)
    try:
        prepared = engine.Engine(options_from(config), _say(config))
        capman = config.pluginmanager.get_plugin("capturemanager")
        quiet = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with quiet:
            prepared.open()
    except HarnessError as exc:
        pytest.exit(f"mtls-harness: {exc}", returncode=2)
    session = Session(prepared, config)
    config.stash[_SESSION_KEY] = session
    try:
        yield session
    finally:
        session.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Also reached after Ctrl-C, when fixture teardown may not have run.
    state = session.config.stash.get(_SESSION_KEY, None)
    if state is not None:
        state.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_SESSION_KEY, None)
    results = state.engine.out / "results.json" if state is not None else None
    if results is not None and results.is_file():
        import json

        terminalreporter.write_line(f"mtls-harness: {report.summary_line(json.loads(results.read_text()))}; {results}")


@pytest.fixture
def run_cell(harness: Session) -> Any:
    """Run a cell (or wait for it, when the matrix runs it) and return its result."""

    def run(cell: Cell) -> CellResult:
        return harness.outcome(cell)

    return run
