"""One engine for the command line and pytest: plan, prepare, run, record (SPEC §3, §12).

``Engine`` validates every option before it touches anything, takes a lock on the
output folder (a second run into the same folder refuses, naming the first), connects
to Docker, builds the images it needs, writes a fresh PKI, opens a ``Run`` (so every
container carries the run id), admits the user's own implementations (harness.admission),
runs cells and writes ``results.json``, ``junit.xml`` and ``report.html``. Cells that
finished are written even when the run is interrupted, marked so. ``mtls-harness matrix``
calls ``run_matrix``; the pytest plugin opens the same ``Engine`` and gives each cell its
own test.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import admission, certs, images, liveness, registry, report
from harness.cells import Cell
from harness.cells import plan as plan_cells
from harness.errors import HarnessError, UsageError
from harness.pods import Run, new_run_id, sweep_stale
from harness.results import CellResult, ResultsDocument, implementation_records, now_iso, write_junit, write_results
from harness.runner import Runner
from harness.scheduling import ignore_further_interrupts, signals_held

DEFAULT_JOBS = 8
LOCK_FILE = ".mtls-harness.lock"

Say = Callable[[str], None]


@dataclass(frozen=True)
class Option:
    """One option of a matrix run, declared once for ``mtls-harness matrix`` and ``pytest scenarios``."""

    dest: str
    flag: str
    help: str
    repeat: bool = False
    metavar: str | None = None
    kind: type = str
    default: object = None
    switch: bool = False
    pytest_name: str | None = None  # where pytest already owns the flag (--capture)

    @property
    def pytest_flag(self) -> str:
        return self.pytest_name or self.flag

    @property
    def pytest_dest(self) -> str:
        """The option's name among pytest's: prefixed, since pytest owns ``capture`` (its
        ``--capture=fd``, a true value, once turned every scenario session into a capture run)."""
        return f"mtls_{self.dest}"

    def argparse_kwargs(self, pytest_front_end: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dest": self.pytest_dest if pytest_front_end else self.dest, "help": self.help}
        if self.switch:
            kwargs.update(action="store_true", default=False)
            return kwargs
        kwargs.update(metavar=self.metavar, type=self.kind)
        if self.repeat:
            kwargs.update(action="append", default=[])
        else:
            kwargs["default"] = None if pytest_front_end and self.dest == "out" else self.default
        return kwargs


OPTIONS = (
    Option(
        "servers",
        "--server",
        "a server implementation (repeatable; see `mtls-harness impls`), or @13 for every Debian 13 server",
        True,
        "IMPL",
    ),
    Option(
        "clients",
        "--client",
        "a client implementation (repeatable; see `mtls-harness impls`), or @12 for every Debian 12 client",
        True,
        "IMPL",
    ),
    Option("scenarios", "--scenario", "a scenario id (repeatable; see `mtls-harness scenarios`)", True, "ID"),
    Option("tls", "--tls", "a TLS version, 1.2 or 1.3 (repeatable)", True, "VERSION"),
    Option(
        "generations",
        "--generation",
        "the Debian generation whose implementations run when no --server/--client names them: "
        "12 (the default) or 13 (repeatable; both for a cross-generation matrix; NAME@13 names one)",
        True,
        "N",
    ),
    Option(
        "impls",
        "--impl",
        "add your own implementation: a folder with impl.toml, admitted before any cell runs (repeatable)",
        True,
        "PATH",
        Path,
    ),
    Option(
        "out",
        "--out",
        "output folder (default out/matrix; out/pytest under pytest)",
        metavar="DIR",
        kind=Path,
        default=Path("out/matrix"),
    ),
    Option(
        "jobs",
        "--jobs",
        f"cells run at once (default {DEFAULT_JOBS}; 1 runs them one by one)",
        metavar="N",
        kind=int,
        default=DEFAULT_JOBS,
    ),
    Option(
        "capture",
        "--capture",
        "capture each cell's handshake and assert on the wire (needs tshark)",
        switch=True,
        pytest_name="--capture-pcap",
    ),
    Option(
        "one_shot",
        "--one-shot",
        "run every client as a fresh process per request, never in its batch worker (the tutorial's way; slower)",
        switch=True,
    ),
)


@dataclass(frozen=True)
class Options:
    """Everything a matrix run is asked to do; the one declaration both front ends use."""

    servers: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    tls: tuple[str, ...] = ()
    generations: tuple[str, ...] = ()
    impls: tuple[Path, ...] = ()
    out: Path = Path("out/matrix")
    jobs: int = DEFAULT_JOBS
    capture: bool = False
    one_shot: bool = False

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Options:
        """Options from parsed flags (argparse's namespace or pytest's options, by ``dest``)."""
        return cls(
            servers=tuple(values.get("servers") or ()),
            clients=tuple(values.get("clients") or ()),
            scenarios=tuple(values.get("scenarios") or ()),
            tls=tuple(values.get("tls") or ()),
            generations=tuple(values.get("generations") or ()),
            impls=tuple(Path(p).resolve() for p in values.get("impls") or ()),
            out=Path(values.get("out") or "out/matrix"),
            jobs=int(values["jobs"]) if values.get("jobs") is not None else DEFAULT_JOBS,
            capture=bool(values.get("capture")),
            one_shot=bool(values.get("one_shot")),
        )

    def selection(self) -> dict[str, list[str]]:
        return {
            "server": list(self.servers),
            "client": list(self.clients),
            "scenario": list(self.scenarios),
            "tls": list(self.tls),
            "generation": list(self.generations),
            "impl": [str(p) for p in self.impls],
        }


def check_out(out: Path) -> Path:
    """The output folder, resolved; a UsageError before anything is created when it cannot be one."""
    resolved = out.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder: name a folder")
    parent = next((p for p in [resolved, *resolved.parents] if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK):
        raise UsageError(f"--out {out}: {parent} is not writable")
    return resolved


def plan(options: Options) -> tuple[registry.Registry, list[Cell]]:
    """Validate ``options`` and plan the cells, touching nothing: every error is a UsageError."""
    if options.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {options.jobs}")
    check_out(options.out)
    found = registry.load(options.impls)
    cells = plan_cells(found, options.servers, options.clients, options.scenarios, options.tls, options.generations)
    if not cells:
        raise UsageError("the selection has no cell: see `mtls-harness scenarios` and `mtls-harness impls`")
    return found, cells


# --- the lock on the output folder ----------------------------------------------------


@dataclass
class Lock:
    """``OUT/.mtls-harness.lock``: an ``flock`` held for the run's life, and in the file the
    run id, pid and host of the run writing into OUT (for the refusal's message).

    The kernel releases an ``flock`` when its process dies, however it dies, so a lock is
    never stale and never needs judging; and two runs racing for a folder cannot both get
    it (a lock file written by create-then-write can be read empty in between). The file
    is left in place when the run ends, empty: unlinking it would let a run that opened
    the old file and one that creates a new one both hold "the" lock.
    """

    path: Path
    run_id: str
    held: bool = False
    _fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = liveness.this_process()
        mine = json.dumps({"run_id": self.run_id, **me, "pid": int(me["pid"])})
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise UsageError(
                f"{self.path.parent} is in use by run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')}): "
                "wait for it, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (mine + "\n").encode(), 0)
        self._fd = fd
        self.held = True

    @staticmethod
    def _holder(fd: int) -> dict[str, Any]:
        """What the run holding the lock wrote (it may not have written it yet)."""
        try:
            holder = json.loads(os.pread(fd, 65536, 0).decode(errors="replace") or "{}")
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def release(self) -> None:
        if self.held and self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            self.held = False


# --- the engine -----------------------------------------------------------------------


@dataclass
class Engine:
    """A prepared run: open it (``with Engine(...)``), run cells, write the results."""

    options: Options
    say: Say = print
    registry: registry.Registry = field(init=False)
    cells: list[Cell] = field(init=False)
    out: Path = field(init=False)
    run_id: str = field(default_factory=new_run_id)
    results: dict[str, CellResult] = field(default_factory=dict)
    started: str = ""
    seconds: float | None = None
    interrupted: bool = False
    run: Run | None = None
    runner: Runner | None = None
    built: dict[str, images.Built] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: Lock | None = None

    def __post_init__(self) -> None:
        self.registry, self.cells = plan(self.options)
        self.out = check_out(self.options.out)

    def open(self) -> Engine:
        """Reach Docker, lock the output folder, build images, write the PKI, open the run."""
        images.connect()  # an unreachable engine is one line before anything is created
        self._lock = Lock(self.out / LOCK_FILE, self.run_id)
        self._lock.acquire()
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise
        return self

    def _prepare(self) -> None:
        from harness import capture

        if self.options.capture:
            capture.require_tshark()
        client = images.connect()
        sweep_stale(client)
        used = {c.server for c in self.cells} | {c.client for c in self.cells}
        self.built = images.ensure_images(client, self.registry, sorted(used), capture=True, say=self.say)
        for stale in ("cells", "servers", "capture", "agents"):
            shutil.rmtree(self.out / stale, ignore_errors=True)
        for stale in ("results.json", "junit.xml", "report.html"):
            (self.out / stale).unlink(missing_ok=True)
        certs_dir = certs.build(self.out / "certs")
        self.run = Run(
            client,
            self.out,
            certs_dir,
            self.run_id,
            images={name: b.tag for name, b in self.built.items()},
            capabilities=self.registry.capabilities(),
            batches=self.registry.batches(),
        )
        self.runner = Runner(self.run, self.registry, capture=self.options.capture, batch=not self.options.one_shot)
        for impl in self.registry.impls:
            if not impl.builtin and impl.name in used:
                admission.admit(self.run, self.registry, impl.name, say=self.say)
        self.started = now_iso()

    def run_cells(self, cells: Sequence[Cell], on_done: Callable[[CellResult], None] | None = None) -> None:
        """Run ``cells`` (``--jobs`` at once); each result lands in ``results`` as it finishes."""
        if self.runner is None:
            raise HarnessError("the engine is not open")

        def done(result: CellResult) -> None:
            self.results[result.cell.id] = result
            if on_done is not None:
                on_done(result)

        began = time.monotonic()
        try:
            self.runner.run_cells(cells, self.options.jobs, done, self.stop)
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            self.seconds = (self.seconds or 0.0) + time.monotonic() - began

    def write(self) -> ResultsDocument | None:
        """results.json, junit.xml and report.html for the cells that finished (None if none did)."""
        if not self.results or self.run is None or self.runner is None:
            return None
        outcomes = list(self.results.values())
        used = {r.cell.server for r in outcomes} | {r.cell.client for r in outcomes}
        meta = {
            "run_id": self.run_id,
            "started": self.started,
            "finished": now_iso(),
            "implementations": implementation_records(
                self.registry,
                used,
                {name: built.tag for name, built in self.built.items()},
                admission.ask_versions(self.run, self.registry, sorted(used)),
            ),
            "selection": self.options.selection(),
            "jobs": self.options.jobs,
            "capture": self.options.capture,
            "one_shot": self.options.one_shot,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3) if self.seconds is not None else None,
        }
        document = write_results(self.out / "results.json", meta, outcomes)
        write_junit(self.out / "junit.xml", outcomes)
        report.write_html(document, self.out / "report.html")
        return document

    def close(self) -> None:
        """Remove every container and network of the run and release the lock; Ctrl-C waits."""
        with signals_held():
            try:
                if self.run is not None:
                    self.run.close()
            finally:
                if self._lock is not None:
                    self._lock.release()

    def __enter__(self) -> Engine:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class Outcome:
    document: ResultsDocument | None
    results: dict[str, CellResult]
    interrupted: bool


def run_matrix(
    options: Options,
    say: Say = print,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[CellResult], None] | None = None,
) -> Outcome:
    """Plan, prepare, run every cell and write the results; what the command line runs.

    Ctrl-C or SIGTERM stops handing out cells; the cells that finished are written,
    marked ``interrupted``, and KeyboardInterrupt goes on to the caller.
    """
    engine = Engine(options, say)
    engine.open()
    try:
        if on_start is not None:
            on_start(len(engine.cells))
        try:
            engine.run_cells(engine.cells, on_done)
        except KeyboardInterrupt:
            # From here to the end more Ctrl-C is ignored: the results are written, then the
            # run's containers removed, without being cut short.
            ignore_further_interrupts()
            try:
                engine.write()
            finally:
                engine.close()
            raise
        document = engine.write()
    finally:
        engine.close()
    return Outcome(document, engine.results, engine.interrupted)
