"""The pytest side of the matrix: options, the session that owns Docker, and results.

``pytest scenarios`` and ``mtls-harness matrix`` both come here. One session builds the
images it needs, generates a fresh PKI into the output folder, opens a ``Run`` (so every
container carries the run id) and closes it on every exit path, including Ctrl-C and
SIGTERM. Each matrix cell is one test with a readable id.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from harness import capture, certs, images, matrix, report
from harness.errors import HarnessError
from harness.pods import Run, sweep_stale

DEFAULT_OUT = Path("out/pytest")
DEFAULT_JOBS = 8


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mtls-harness")
    group.addoption("--server", action="append", default=[], help="server implementation (repeatable)")
    group.addoption("--client", action="append", default=[], help="client implementation (repeatable)")
    group.addoption("--scenario", action="append", default=[], help="scenario id (repeatable)")
    group.addoption("--tls", action="append", default=[], help="TLS version 1.2 or 1.3 (repeatable)")
    group.addoption("--out", default=None, help=f"output folder (default {DEFAULT_OUT})")
    group.addoption(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"matrix cells run at once (default {DEFAULT_JOBS}; 1 runs them one by one)",
    )
    group.addoption(
        "--capture-pcap",
        action="store_true",
        default=False,
        help="capture every matrix cell with tshark and assert on the wire (needs tshark on this machine)",
    )


@dataclass
class Session:
    """What the scenario tests share: the run, its runner and the results so far."""

    run: Run
    runner: matrix.Runner
    out: Path
    certs_dir: Path
    built: dict[str, images.Built]
    started: str
    results: list[matrix.CellResult] = field(default_factory=list)
    closed: bool = False
    _wire_runner: matrix.Runner | None = None
    _outcomes: dict[str, matrix.CellResult] | None = None
    seconds: float | None = None

    def outcome(self, config: pytest.Config, cell: matrix.Cell) -> matrix.CellResult:
        """The cell's result. The first call runs every collected cell, in parallel."""
        if self._outcomes is None:
            cells = config.stash.get(_CELLS_KEY, [])
            jobs = int(config.getoption("--jobs"))
            capman = config.pluginmanager.get_plugin("capturemanager")
            started = time.monotonic()
            quiet = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
            with quiet, report.LiveProgress(len(cells)) as progress:
                self._outcomes = self.runner.run_cells(cells, jobs, lambda r: progress.cell_done(r.passed))
            self.seconds = time.monotonic() - started
        if cell.id not in self._outcomes:
            self._outcomes[cell.id] = self.runner.run_cell(cell)
        return self._outcomes[cell.id]

    def wire_runner(self) -> matrix.Runner:
        """A runner whose pods carry the capture sidecar, for the wire tests."""
        if self._wire_runner is None:
            capture.require_tshark()
            self._wire_runner = matrix.Runner(self.run, capture=True, purpose="wire")
        return self._wire_runner

    def close(self, config: pytest.Config) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.results:
                meta = {
                    "run_id": self.run.run_id,
                    "started": self.started,
                    "finished": matrix.now_iso(),
                    "images": {name: b.tag for name, b in self.built.items()},
                    "versions": self.runner.versions(self.results[0].cell.server),
                    "selection": selection(config),
                    "jobs": int(config.getoption("--jobs")),
                    "capture": bool(config.getoption("--capture-pcap")),
                    "seconds": round(self.seconds, 3) if self.seconds is not None else None,
                }
                matrix.write_results(self.out / "results.json", meta, self.results)
                document = json.loads((self.out / "results.json").read_text())
                report.write_html(document, self.out / "report.html")
        finally:
            self.run.close()


def selection(config: pytest.Config) -> dict[str, list[str]]:
    return {
        "server": list(config.getoption("--server")),
        "client": list(config.getoption("--client")),
        "scenario": list(config.getoption("--scenario")),
        "tls": list(config.getoption("--tls")),
    }


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine")
    config.addinivalue_line("markers", "pcap: captures handshakes and inspects them (needs tshark)")
    # SIGTERM takes the same path as Ctrl-C, so the run's finally blocks remove its containers.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        cells = matrix.plan(
            config.getoption("--server"),
            config.getoption("--client"),
            config.getoption("--scenario"),
            config.getoption("--tls"),
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from exc
    wanted = getattr(metafunc.module, "SCENARIOS", None)
    if wanted is not None:
        cells = [c for c in cells if c.scenario.id in wanted]
    metafunc.parametrize("cell", cells, ids=[c.id for c in cells])


_SESSION_KEY = pytest.StashKey[Session]()
_CELLS_KEY = pytest.StashKey[list[matrix.Cell]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember the matrix cells left after -k and friends, to run them together."""
    cells = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("cell"), matrix.Cell):
            cells.append(callspec.params["cell"])
    session.config.stash[_CELLS_KEY] = cells


def _say(config: pytest.Config) -> images.Say:
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
    out = Path(config.getoption("--out") or DEFAULT_OUT).resolve()
    for stale in ("cells", "servers"):
        shutil.rmtree(out / stale, ignore_errors=True)
    try:
        client = images.connect()
        sweep_stale(client)
        wanted = {"curl", "node", "python", "capture"}
        capture_all = bool(config.getoption("--capture-pcap"))
        if capture_all:
            capture.require_tshark()
        built = images.ensure_images(client, wanted, say=_say(config))
        certs_dir = certs.build(out / "certs")
    except HarnessError as exc:
        pytest.exit(f"mtls-harness: {exc}", returncode=2)
    run = Run(client, out, certs_dir)
    session = Session(run, matrix.Runner(run, capture=capture_all), out, certs_dir, built, matrix.now_iso())
    config.stash[_SESSION_KEY] = session
    atexit.register(run.close)
    try:
        yield session
    finally:
        session.close(config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Also reached after Ctrl-C, when fixture teardown may not have run.
    state = session.config.stash.get(_SESSION_KEY, None)
    if state is not None:
        state.close(session.config)


@pytest.fixture
def run_cell(harness: Session, request: pytest.FixtureRequest) -> Any:
    """Run a cell, record its result for results.json, and return it."""

    def run(cell: matrix.Cell) -> matrix.CellResult:
        result = harness.outcome(request.config, cell)
        harness.results.append(result)
        return result

    return run
