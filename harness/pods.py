"""Containers, pods and their cleanup.

A *pod* is a server container plus the client containers that join its network
namespace (``--network container:<server>``), so every client reaches the server as
``https://localhost:<port>`` exactly as in the tutorial, and no host port is published.
Server processes run inside the server container (one per server configuration, each
on its own port); client programs run as ``docker exec`` in their client containers.

Everything this module creates carries ``org.mtls-harness.run=<run id>`` and is removed
by ``Run.close()``, which runs on every exit path (``with Run(...)``; SIGTERM is turned
into the same path by the command line). Resources of runs whose process is gone are
swept by the next run and by ``mtls-harness clean``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from harness import agent, liveness
from harness.agent import Agent
from harness.capture import CAPTURE_FILTER, MARKER_PORT, MARKER_PREFIX, PcapFollower
from harness.certs import role_view
from harness.errors import HarnessError
from harness.images import image_ref
from harness.registry import BatchSpec
from harness.verdicts import UNSUPPORTED_EXIT

LABEL = "org.mtls-harness"
RUN_LABEL = f"{LABEL}.run"
PID_LABEL = f"{LABEL}.pid"
HOST_LABEL = f"{LABEL}.host"
PROCESS_LABEL = f"{LABEL}.process"  # the rest of liveness.this_process(), to judge a run dead
ROLE_LABEL = f"{LABEL}.role"
CERTS_MOUNT = "/certs"
OUT_MOUNT = "/out"
#: The per-role views of the certificates folder, under the run's output folder.
VIEWS_DIR = "views"
AGENTS_DIR = "agents"  # one folder per client container, mounted in that container only
#: The parts of the output folder each role writes (and so mounts).
WRITES = {"server": ("servers",), "client": ("cells",), "capture": ("capture",)}
#: How long a server process (or a client's batch worker) may take to say it is ready. Its
#: start is the stack's own work, not a verdict: NSS's server imports every CA of --root-ca
#: into a new database first (600 of them for huge-ca-list: 20 s did not suffice on a loaded
#: 2-core machine), so the limit is generous; a server that never says ready still ends
#: as a timeout, only later.
READY_TIMEOUT_S = 60.0
#: Exit status of coreutils ``timeout`` when the command ran out of time.
TIMEOUT_EXIT = 124


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ExecResult:
    """What one program run inside a container left behind."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float


@dataclass
class ServerProcess:
    """One server program running in a pod, with its log on the host."""

    pod: Pod
    name: str
    port: int
    argv: tuple[str, ...]
    log_path: Path
    exec_id: str

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def running(self) -> bool:
        info = self.pod.run.client.api.exec_inspect(self.exec_id)
        return bool(info.get("Running"))

    def exit_code(self) -> int | None:
        info = self.pod.run.client.api.exec_inspect(self.exec_id)
        return None if info.get("Running") else info.get("ExitCode")


class Run:
    """One harness run: its id, labels, output folder and every resource it created."""

    def __init__(
        self,
        client: docker.DockerClient,
        out_dir: Path,
        certs_dir: Path,
        run_id: str | None = None,
        images: dict[str, str] | None = None,
        capabilities: dict[str, tuple[str, ...]] | None = None,
        batches: dict[str, BatchSpec] | None = None,
    ):
        self.client = client
        self.images = dict(images or {})
        self.capabilities = dict(capabilities or {})  # a server's manifest's own (registry)
        self.batches = dict(batches or {})  # a client's manifest's batch worker (registry)
        self.run_id = run_id or new_run_id()
        self.out_dir = out_dir.resolve()
        self.certs_dir = certs_dir.resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._network: Network | None = None
        self._views: dict[str, Path] = {}
        self._views_lock = threading.Lock()
        self._pods: dict[tuple[str, str], Pod] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def labels(self) -> dict[str, str]:
        me = liveness.this_process()
        return {
            LABEL: "1",
            RUN_LABEL: self.run_id,
            PID_LABEL: me["pid"],
            HOST_LABEL: me["host"],
            PROCESS_LABEL: json.dumps({k: me[k] for k in ("pidns", "boot", "started")}, sort_keys=True),
        }

    def network(self) -> Network:
        """The run's own network: internal, so nothing in it reaches outside."""
        with self._lock:
            if self._closed:  # a thread still starting something after the run ended
                raise HarnessError("the run is closed")
            if self._network is None:
                self._network = self.client.networks.create(
                    f"mtls-harness-{self.run_id}", driver="bridge", internal=True, labels=self.labels
                )
            return self._network

    def pod(self, impl: str, purpose: str = "matrix", capture: bool = False, agents: bool = True) -> Pod:
        """The pod whose server container runs ``impl`` for ``purpose`` (started on first use).

        With ``capture`` the pod also gets the capture sidecar (SPEC §9). With ``agents``
        (the default) its client containers run their cells through an agent
        (harness/agent.py) instead of one ``docker exec`` each.
        """
        network = self.network()
        with self._lock:
            if self._closed:
                raise HarnessError("the run is closed")
            if (impl, purpose) not in self._pods:
                self._pods[(impl, purpose)] = Pod(
                    self, impl, network, name=f"{impl}-{purpose}", capture=capture, agents=agents
                )
            return self._pods[(impl, purpose)]

    def image_for(self, impl: str) -> str:
        """The image an implementation runs (its manifest's), ``mtls-harness/<impl>`` by default."""
        return self.images.get(impl, image_ref(impl))

    def probe(self, impl: str, argv: Sequence[str], timeout_s: float) -> ExecResult:
        """Run ``argv`` once in a fresh, labelled, network-less container of ``impl``'s image."""
        started = time.monotonic()
        try:
            container: Container = self.client.containers.run(
                self.image_for(impl),
                list(argv),
                detach=True,
                labels=dict(self.labels, **{ROLE_LABEL: f"probe:{impl}"}),
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
            )
        except docker.errors.ImageNotFound as exc:
            raise HarnessError(f"image {self.image_for(impl)} is missing: run `mtls-harness images`") from exc
        try:
            status = container.wait(timeout=timeout_s)
            stdout = container.logs(stdout=True, stderr=False)
            stderr = container.logs(stdout=False, stderr=True)
            return ExecResult(
                tuple(argv), int(status.get("StatusCode", -1)), stdout, stderr, time.monotonic() - started
            )
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)

    def volumes(self, role: str) -> dict[str, dict[str, str]]:
        """What a container of ``role`` mounts: least privilege (SPEC §12).

        ``/certs`` is a read-only view holding every public file and only that role's
        private keys (a client never sees a server's key); of the output folder, only the
        part the role writes: servers their logs, clients their cells' key logs, the
        capture sidecar its capture files. Nothing else of the run folder is visible.
        """
        mounts: dict[str, dict[str, str]] = {}
        if role in ("server", "client"):
            with self._views_lock:  # not self._lock: pod() holds it while a pod starts its containers
                if role not in self._views:
                    self._views[role] = role_view(self.certs_dir, self.out_dir / VIEWS_DIR / role, role)
            mounts[str(self._views[role])] = {"bind": CERTS_MOUNT, "mode": "ro"}
        for sub in WRITES[role]:
            folder = self.out_dir / sub
            folder.mkdir(parents=True, exist_ok=True)
            mounts[str(folder)] = {"bind": f"{OUT_MOUNT}/{sub}", "mode": "rw"}
        return mounts

    def container_path(self, host_path: Path) -> str:
        """Where ``host_path`` (under the certs or a mounted output folder) appears in a container."""
        resolved = host_path.resolve()
        for sub in sorted({s for subs in WRITES.values() for s in subs}):
            root = self.out_dir / sub
            if resolved == root or root in resolved.parents:
                return f"{OUT_MOUNT}/{sub}/{resolved.relative_to(root)}".rstrip("/")
        if resolved == self.certs_dir or self.certs_dir in resolved.parents:
            return f"{CERTS_MOUNT}/{resolved.relative_to(self.certs_dir)}".rstrip("/")
        raise HarnessError(f"{host_path} is not under the certificates folder or a mounted output folder")

    def close_pods(self, purpose: str) -> None:
        """Remove the pods of one ``purpose`` (a test's own runner, once its cells are done):
        each holds a server process per configuration, and a second full set of them beside
        the matrix's is more memory than the machine has."""
        with self._lock:
            pods = [pod for (_impl, used_for), pod in self._pods.items() if used_for == purpose]
            self._pods = {key: pod for key, pod in self._pods.items() if key[1] != purpose}
        for pod in pods:
            pod.close()

    def close(self) -> None:
        """Remove every container and network of this run; safe to call twice."""
        with self._lock:
            self._closed = True
            pods = list(self._pods.values())
            self._pods.clear()
            self._network = None
        try:
            remove_labelled(self.client, {RUN_LABEL: self.run_id})
        finally:
            for pod in pods:
                pod.close_agents()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Pod:
    """A server container and the client containers sharing its network namespace."""

    def __init__(
        self,
        run: Run,
        impl: str,
        network: Network,
        name: str | None = None,
        capture: bool = False,
        agents: bool = True,
    ):
        self.run = run
        self.impl = impl
        self.name = name or impl
        self.agents = agents
        self._clients: dict[str, Container] = {}
        self._agents: dict[str, Agent | None] = {}
        self._batch: dict[str, Agent | None] = {}  # a client's batch worker, once asked for
        self._lock = threading.Lock()
        self._batch_lock = threading.Lock()  # held while a worker starts (not _lock: clients start meanwhile)
        # A server manifest may ask for the capabilities that drop root (registry
        # DROPPING_CAPABILITIES), for a root container only; nothing else is ever added.
        extra = run.capabilities.get(impl, ()) if os.getuid() == 0 else ()
        self.server = self._start(impl, "server", network=network.name, **({"cap_add": list(extra)} if extra else {}))
        self.sidecar: Container | None = None
        self.capture: PcapFollower | None = self._start_capture() if capture else None

    def _start(self, impl: str, role: str, command: Sequence[str] = ("sleep", "infinity"), **kwargs: Any) -> Container:
        labels = dict(self.run.labels, **{ROLE_LABEL: f"{role}:{impl}"})
        # No capability at all unless the caller adds one (the capture sidecar's NET_RAW):
        # a container reads what it should as the owner of the files, never by DAC_OVERRIDE.
        if os.getuid() != 0 and role != "capture":
            kwargs.setdefault("user", f"{os.getuid()}:{os.getgid()}")
        volumes = kwargs.pop("volumes", None) or self.run.volumes(role)
        try:
            container: Container = self.run.client.containers.run(
                self.run.image_for(impl),
                list(command),
                detach=True,
                init=True,
                labels=labels,
                volumes=volumes,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                **kwargs,
            )
        except docker.errors.ImageNotFound as exc:
            raise HarnessError(f"image {self.run.image_for(impl)} is missing: run `mtls-harness images`") from exc
        return container

    def _start_capture(self) -> PcapFollower:
        """The capture sidecar: dumpcap on the pod's loopback for the pod's whole life.

        It gets only NET_RAW and NET_ADMIN. dumpcap writes a pcap stream to a pipe (so
        each batch is flushed) and ``cat`` appends it to the run's capture file.
        """
        folder = self.run.out_dir / "capture"
        folder.mkdir(parents=True, exist_ok=True)
        pcap, log = folder / f"{self.name}.pcap", folder / f"{self.name}.log"
        for path in (pcap, log):
            path.unlink(missing_ok=True)
        command = [
            "sh",
            "-c",
            'dumpcap -q -i lo -f "$0" -P -w - 2>"$2" | cat >"$1"',
            CAPTURE_FILTER,
            self.run.container_path(pcap),
            self.run.container_path(log),
        ]
        sidecar = self._start(
            "capture",
            "capture",
            command,
            network_mode=f"container:{self.server.id}",
            cap_add=["NET_RAW", "NET_ADMIN"],
        )
        self.sidecar = sidecar
        follower = PcapFollower(pcap)
        # Ready when a marker sent into the pod comes back through the capture file;
        # dumpcap's own "Capturing on" comes first and saves a round of markers.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and "Capturing on" not in (
            log.read_text(errors="replace") if log.exists() else ""
        ):
            time.sleep(0.01)
        while True:
            sidecar.reload()
            if sidecar.status not in ("created", "running"):
                raise HarnessError(
                    f"capture sidecar of pod {self.name} stopped: {tail(log.read_text(errors='replace'))}"
                )
            start = follower.poll()
            self._send_marker(sidecar, "ready")
            try:
                follower.wait_for_marker("ready", start, timeout_s=1.0)
                return follower
            except HarnessError:
                if time.monotonic() > deadline:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise HarnessError(
                        f"capture sidecar of pod {self.name} saw nothing within {READY_TIMEOUT_S:.0f} s: {tail(text)}"
                    ) from None

    def send_marker(self, name: str) -> None:
        """Send a capture marker into the pod (from the sidecar)."""
        if self.sidecar is None:
            raise HarnessError(f"pod {self.name} has no capture sidecar")
        self._send_marker(self.sidecar, name)

    def _send_marker(self, container: Container, name: str) -> None:
        script = f'printf "%s" "$0" > /dev/udp/127.0.0.1/{MARKER_PORT}'
        api = self.run.client.api
        exec_id = api.exec_create(container.id, ["bash", "-c", script, (MARKER_PREFIX + name.encode()).decode()])["Id"]
        api.exec_start(exec_id)

    def client(self, impl: str) -> Container:
        with self._lock:
            if impl not in self._clients:
                agent_dir = self.run.out_dir / AGENTS_DIR / f"{self.name}-{impl}"
                mounts = self.run.volumes("client")
                if self.agents:
                    mounts[str(agent_dir)] = {"bind": agent.MOUNT, "mode": "rw"}
                    agent_dir.mkdir(parents=True, exist_ok=True)
                container = self._start(impl, "client", network_mode=f"container:{self.server.id}", volumes=mounts)
                self._clients[impl] = container
                self._agents[impl] = self._start_agent(container, agent_dir) if self.agents else None
            return self._clients[impl]

    def _start_agent(self, container: Container, folder: Path) -> Agent | None:
        """The container's agent, or None (no bash: its cells use ``docker exec``)."""
        started = Agent(folder)
        api = self.run.client.api
        try:
            exec_id = api.exec_create(container.id, ["bash", f"{agent.MOUNT}/agent.sh", agent.MOUNT])["Id"]
            api.exec_start(exec_id, detach=True)
        except Exception:  # no bash, or Docker refused: this container's cells use docker exec
            started.close()
            return None
        if not started.wait_ready():
            started.close()
            return None
        return started

    def _batch_worker(self, impl: str) -> Agent | None:
        """The client's batch worker (started on first use), or None: it has none, its
        container has no agent, or the worker did not start (then its cells are one-shot)."""
        spec = self.run.batches.get(impl)
        if spec is None or not self.agents:
            return None
        container = self.client(impl)
        with self._batch_lock:
            if impl in self._batch:
                return self._batch[impl]
            if self._agents.get(impl) is None:
                self._batch[impl] = None
                return None
            folder = self.run.out_dir / AGENTS_DIR / f"{self.name}-{impl}" / agent.BATCH
            worker = Agent(folder, batch=True)
            api = self.run.client.api
            command = ["bash", "-c", agent.BATCH_WRAPPER, "batch", f"{agent.MOUNT}/{agent.BATCH}", *spec.argv]
            try:
                exec_id = api.exec_create(container.id, command, workdir=spec.workdir)["Id"]
                api.exec_start(exec_id, detach=True)
            except docker.errors.APIError as exc:
                worker.close()
                raise HarnessError(f"docker could not start the batch worker of {impl}: {_first_line(exc)}") from None
            if not worker.wait_ready(READY_TIMEOUT_S):
                # A worker that never says ready is the image's bug: say it, do not hide it.
                said = worker.log_tail()
                worker.close()
                raise HarnessError(
                    f"the batch worker of {impl} ({' '.join(spec.argv)}) did not say ready within "
                    f"{READY_TIMEOUT_S:.0f} s; its log: {said}"
                )
            self._batch[impl] = worker
            return worker

    def close(self) -> None:
        """Remove this pod's containers (its agents and workers first); the run's other
        pods and its network stay. Safe to call twice."""
        self.close_agents()
        with self._lock:
            containers = [self.server, *([self.sidecar] if self.sidecar else []), *self._clients.values()]
            self._clients.clear()
        for container in reversed(containers):  # the clients share the server's namespace
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True)

    def close_agents(self) -> None:
        with self._lock, self._batch_lock:
            agents = [a for a in [*self._agents.values(), *self._batch.values()] if a is not None]
            self._agents.clear()
            self._batch.clear()
        for running in agents:
            running.close()

    def start_server(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        *,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
        ready_text: str = "listening at",
    ) -> ServerProcess:
        """Start ``argv`` in the server container and wait until it says it listens."""
        # Named by pod too: two runners of one run (matrix, wire, parity) use the same ports.
        log_path = self.run.out_dir / "servers" / f"{self.name}--{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
        container_log = self.run.container_path(log_path)
        # The program's own output goes to its log; "$0" is the log path, "$@" the argv.
        command = ["sh", "-c", 'exec "$@" >"$0" 2>&1', container_log, *argv]
        api = self.run.client.api
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                exec_id = api.exec_create(self.server.id, command, workdir=workdir, environment=environment)["Id"]
                api.exec_start(exec_id, detach=True)
                break
            except docker.errors.APIError as exc:
                # A paused (hung) container cannot start a process: like a server that never
                # says it listens, it is a timeout once the limit passes, and the run goes on.
                if "paused" not in str(exc) or time.monotonic() > deadline:
                    if "paused" in str(exc):
                        raise ServerNotReady(
                            f"server {name}: container {self.server.short_id} is paused and did not resume "
                            f"within {READY_TIMEOUT_S:.0f} s"
                        ) from None
                    raise HarnessError(f"server {name}: docker refused to start it ({_first_line(exc)})") from None
                time.sleep(0.5)
        process = ServerProcess(self, name, port, tuple(argv), log_path, exec_id)
        while ready_text not in process.log_text():
            code = process.exit_code()
            if code == UNSUPPORTED_EXIT:
                said = [line for line in process.log_text().splitlines() if line.strip()]
                raise ServerUnsupported(said[-1].strip() if said else f"server {name} exited {code}: unsupported")
            if code is not None:
                raise HarnessError(
                    f"server {name} ({' '.join(argv)}) in container {self.server.short_id} exited "
                    f"with status {code} before listening; log: {tail(process.log_text())}"
                )
            if time.monotonic() > deadline:
                raise ServerNotReady(
                    f"server {name} in container {self.server.short_id} did not say {ready_text!r} "
                    f"within {READY_TIMEOUT_S:.0f} s; log: {tail(process.log_text())}"
                )
            time.sleep(0.01)
        return process

    def exec(
        self,
        impl: str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        workdir: str | None = None,
        environment: dict[str, str] | None = None,
        marker: str | None = None,
        batch: bool = False,
    ) -> ExecResult:
        """Run ``argv`` in the ``impl`` client container, killed after ``timeout_s``.

        With ``marker``, the program's end is followed by the UDP marker that tells
        the capture the cell is over (see harness.capture). With ``batch``, a command the
        client's batch worker serves goes to it instead of a fresh process.
        """
        container = self.client(impl)
        runner = self._agents.get(impl)
        spec = self.run.batches.get(impl)
        if batch and spec is not None and spec.serves(argv):
            worker = self._batch_worker(impl)
            if worker is not None and worker.exited is None and not any("\n" in a for a in argv):
                runner = worker
        if runner is None:
            return self._exec(container, argv, timeout_s, workdir, environment, marker)
        code, stdout, stderr, seconds = runner.run(
            argv,
            timeout_s,
            workdir,
            environment,
            MARKER_PREFIX + marker.encode() if marker is not None else None,
            MARKER_PORT,
        )
        return ExecResult(tuple(argv), code, stdout, stderr, seconds)

    def exec_in_server(self, argv: Sequence[str], *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        """Run ``argv`` in the pod's own (server) container, killed after ``timeout_s``."""
        return self._exec(self.server, argv, timeout_s, workdir, None, None)

    def _exec(
        self,
        container: Container,
        argv: Sequence[str],
        timeout_s: float,
        workdir: str | None,
        environment: dict[str, str] | None,
        marker: str | None,
    ) -> ExecResult:
        command = ["timeout", "-k", "2", f"{timeout_s:g}", *argv]
        if marker is not None:
            script = (
                'timeout -k 2 "$0" "$@"; rc=$?; '
                f'printf "%s" "$MTLS_HARNESS_MARKER" > /dev/udp/127.0.0.1/{MARKER_PORT}; exit $rc'
            )
            command = ["bash", "-c", script, f"{timeout_s:g}", *argv]
            environment = dict(environment or {}, MTLS_HARNESS_MARKER=(MARKER_PREFIX + marker.encode()).decode())
        api = self.run.client.api
        started = time.monotonic()
        try:
            exec_id = api.exec_create(container.id, command, workdir=workdir, environment=environment)["Id"]
            stdout, stderr = api.exec_start(exec_id, demux=True)
            code = api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as exc:
            raise HarnessError(f"docker could not run {argv[0]} in {container.short_id}: {_first_line(exc)}") from None
        return ExecResult(
            tuple(argv),
            -1 if code is None else int(code),
            stdout or b"",
            stderr or b"",
            time.monotonic() - started,
        )


class ServerNotReady(HarnessError):
    """A server that did not say it listens within its limit (hung, paused, too slow)."""


class ServerUnsupported(HarnessError):
    """A server that exited 127 at start: a configuration its stack cannot honour
    (images/CONTRACT.md), said in its last line; the cell is unsupported with that reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def tail(text: str, lines: int = 5) -> str:
    kept = text.strip().splitlines()[-lines:]
    return " | ".join(kept) if kept else "(empty)"


def remove_labelled(client: docker.DockerClient, labels: dict[str, str]) -> tuple[int, int]:
    """Remove the containers, then the networks, carrying all of ``labels``."""
    selector = [f"{k}={v}" for k, v in labels.items()]
    containers = client.containers.list(all=True, ignore_removed=True, filters={"label": selector})
    for container in containers:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: its removal is already in progress (another cleanup)
                raise
    networks = client.networks.list(filters={"label": selector})
    for network in networks:
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
    return len(containers), len(networks)


def _identity(labels: dict[str, str]) -> dict[str, str]:
    try:
        process = json.loads(labels.get(PROCESS_LABEL, "") or "{}")
    except ValueError:
        process = {}
    if not isinstance(process, dict):
        process = {}
    return {"pid": labels.get(PID_LABEL, ""), "host": labels.get(HOST_LABEL, ""), **process}


def stale_runs(client: docker.DockerClient) -> set[str]:
    """Run ids whose harness process is certainly gone (liveness.gone): killed runs of
    this machine and pid namespace. A run started elsewhere is never judged from here."""
    found: dict[str, dict[str, str]] = {}
    # ignore_removed: docker-py lists ids, then inspects each; another run's container
    # removed in between must not end this run with a 404 (seen with parallel runs).
    for container in client.containers.list(all=True, ignore_removed=True, filters={"label": [f"{LABEL}=1"]}):
        found[container.labels.get(RUN_LABEL, "")] = container.labels
    for network in client.networks.list(filters={"label": [f"{LABEL}=1"]}):
        found[(network.attrs.get("Labels") or {}).get(RUN_LABEL, "")] = network.attrs.get("Labels") or {}
    return {run_id for run_id, labels in found.items() if run_id and liveness.gone(_identity(labels))}


def sweep_stale(client: docker.DockerClient) -> list[str]:
    """Remove what killed runs on this host left; returns their run ids."""
    swept = sorted(stale_runs(client))
    for run_id in swept:
        remove_labelled(client, {RUN_LABEL: run_id})
    return swept


def clean_all(client: docker.DockerClient, everything: bool = False) -> tuple[int, int, list[str]]:
    """Remove the containers and networks of every run that is not known to be running.

    A run whose harness process is alive on this machine, or that another sandbox
    started (it cannot be judged from here), is kept unless ``everything``. A run of a
    version before liveness labels (no ``PROCESS_LABEL``) cannot be judged either and is
    removed, as ``clean`` always did. Returns the containers and networks removed and the
    run ids kept.
    """
    if everything:
        return (*remove_labelled(client, {LABEL: "1"}), [])
    selector = {"label": [f"{LABEL}=1"]}
    containers = client.containers.list(all=True, ignore_removed=True, filters=selector)
    networks = client.networks.list(filters=selector)
    labelled = [(c.labels, c) for c in containers] + [(n.attrs.get("Labels") or {}, n) for n in networks]
    verdicts = {
        labels.get(RUN_LABEL, ""): liveness.judged(_identity(labels)) if PROCESS_LABEL in labels else "gone"
        for labels, _thing in labelled
    }
    kept = sorted(run_id for run_id, verdict in verdicts.items() if verdict != "gone")
    removed = [0, 0]
    for n, (labels, thing) in enumerate(labelled):
        if labels.get(RUN_LABEL, "") in kept:
            continue
        try:
            thing.remove(**({"force": True} if n < len(containers) else {}))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        removed[0 if n < len(containers) else 1] += 1
    return removed[0], removed[1], kept


def leftovers(client: docker.DockerClient, run_id: str | None = None) -> list[str]:
    """Names of labelled containers and networks still present (for tests)."""
    selector = [f"{RUN_LABEL}={run_id}"] if run_id else [f"{LABEL}=1"]
    names = [
        f"container {c.name}"
        for c in client.containers.list(all=True, ignore_removed=True, filters={"label": selector})
    ]
    names += [f"network {n.name}" for n in client.networks.list(filters={"label": selector})]
    return names


__all__ = [
    "ExecResult",
    "Pod",
    "Run",
    "ServerProcess",
    "clean_all",
    "leftovers",
    "new_run_id",
    "sweep_stale",
]
