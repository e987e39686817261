"""``make bench``: the speed figures of SPEC §11 (second version), measured in one run.

1. Cold start: every mtls-harness image removed, then a one-cell matrix (the whole
   command's wall time, an upper bound of "first verdict"); then ``mtls-harness images``
   builds the rest, and each image's cold build time and size are kept.
2. The full default matrix (every stack), warm: its wall time and cells per second.
3. The in-container floor of each client: the same request as a matrix cell (the
   trusted client against the Python server, TLS 1.3) run in a loop *inside* the
   client's container, timed there by the shell (no docker exec, no agent, no harness).
   Per client, the median cell time of a one-at-a-time run of that very cell, over that
   floor; the figure is the worst client's ratio.
4. The full matrix's wall over its CPU floor: the sum over its cells of their client's
   in-container floor, divided by the cores.
5. Capture on over capture off: the full matrix's cell phase (``run.seconds``) with
   ``--capture`` over the same phase of step 2.

It prints each figure with its target and writes ``bench.json``. Timings are measured
here and nowhere else: no test asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import certs, images, registry
from harness.pods import Run

TARGETS = {
    "cell_over_floor_median": ("<=", 1.25),
    "matrix_over_cpu_floor": ("<=", 1.5),
    "capture_over_nocapture": ("<=", 1.2),
    "cold_start_first_verdict_s": ("<=", 120.0),
}
FLOOR_SCENARIO = "trusted-client"
FLOOR_TLS = "1.3"
#: "The same client binary doing nothing": each client manifest's ``floor`` (the client
#: program started and ended without a request, so it loads the same code); its
#: ``bare_floor`` (the bare interpreter) is measured too and reported beside it.
FLOOR_SAMPLES = 15


def cli(*argv: str) -> tuple[float, int, str]:
    """Run ``mtls-harness`` as a user would; (seconds, exit status, output tail)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, check=False)
    return time.monotonic() - started, result.returncode, (result.stdout + result.stderr)[-2000:]


def results(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "results.json").read_text())
    return document


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(), "host_python": platform.python_version()}


def cold_start(out: Path) -> float:
    client = images.connect()
    for image in client.images.list(name=images.REPO + "/*"):
        for tag in image.tags:
            client.images.remove(tag, force=True)
    found = registry.default()
    argv = [
        "matrix", "--server", found.servers[0], "--client", found.clients[0], "--scenario", "trusted-client",
        "--tls", "1.3", "--out", str(out / "cold"),
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    (out / "cold.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"bench: the cold-start matrix failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def floors(out: Path, floor_server: str) -> dict[str, float]:
    """Each client's in-container floor: the median seconds of the floor cell's own
    command, run FLOOR_SAMPLES times in a loop inside its container and timed there."""
    from harness.scenarios import BY_ID

    client = images.connect()
    found = registry.default()
    certs.build(out / "floor" / "certs")
    scenario = BY_ID[FLOOR_SCENARIO]
    with Run(
        client, out / "floor", out / "floor" / "certs", images=found.images(), capabilities=found.capabilities()
    ) as run:
        pod = run.pod(floor_server, purpose="floor")

        def path_in(relative: str) -> str:
            return run.container_path(run.certs_dir / relative)

        argv, workdir = found.server_command(floor_server, scenario.server, FLOOR_TLS, 9443, path_in)
        pod.start_server("floor", argv, 9443, workdir=workdir, ready_text=found.server(floor_server).ready)
        medians = {}
        for name in found.clients:
            command, cwd = found.client_command(name, scenario.client, "https://localhost:9443", path_in)
            loop = (
                f"for i in $(seq {FLOOR_SAMPLES + 1}); do s=$(date +%s%N); "
                f"{shlex.join(command)} >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 )); done"
            )
            result = pod.exec(name, ["bash", "-c", loop], timeout_s=600, workdir=cwd)
            samples = [int(x) / 1e6 for x in result.stdout.decode().split()[1:]]  # the first warms the cache
            if result.exit_code != 0 or not samples:
                raise SystemExit(f"bench: the floor loop of {name} failed: {result.stderr.decode()[-300:]}")
            medians[name] = statistics.median(samples)
        return medians


def built_images(output: str) -> dict[str, dict[str, float]]:
    """{image: {seconds, mb}} from the "built <tag> in N s (M MB)" lines of an images build."""
    found = {}
    for match in re.finditer(r"built mtls-harness/([\w.-]+):\w+ in (\d+) s \((\d+) MB\)", output):
        found[match.group(1)] = {"seconds": float(match.group(2)), "mb": float(match.group(3))}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--skip-cold", action="store_true", help="keep the images (no cold-start figure)")
    parser.add_argument(
        "--floor-server",
        required=True,
        metavar="IMPL",
        help="the server of the floor's request (the Makefile names one; the harness names no stack)",
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    figures: dict[str, Any] = {"machine": machine(), "jobs": args.jobs}

    print("bench: cold start (removing every mtls-harness image)", flush=True)
    figures["cold_start_first_verdict_s"] = None if args.skip_cold else round(cold_start(out), 2)
    print("bench: building the other images", flush=True)
    started = time.monotonic()
    build = subprocess.run([sys.executable, "-m", "harness", "images"], capture_output=True, text=True, check=False)
    if build.returncode != 0:
        raise SystemExit(f"bench: the images did not build:\n{(build.stdout + build.stderr)[-2000:]}")
    figures["images_built_after_cold_start_s"] = round(time.monotonic() - started, 1)
    figures["image_builds"] = built_images((out / "cold.log").read_text() if (out / "cold.log").exists() else "")
    figures["image_builds"].update(built_images(build.stdout + build.stderr))

    print("bench: the full default matrix, warm images", flush=True)
    seconds, status, tail = cli("matrix", "--jobs", str(args.jobs), "--out", str(out / "matrix"))
    if status not in (0, 1):
        raise SystemExit(f"bench: the matrix could not run (exit {status}):\n{tail}")
    document = results(out / "matrix")
    cells = len(document["cells"])
    figures.update(
        cells=cells,
        matrix_wall_s=round(seconds, 2),
        matrix_cells_phase_s=document["run"].get("seconds"),
        cells_per_second=round(cells / seconds, 2),
        all_cells_as_expected=status == 0,
    )

    print("bench: the in-container floor of every client", flush=True)
    floor = floors(out, args.floor_server)
    print("bench: the floor's own cell, one at a time, through the harness", flush=True)
    repeats = 5
    durations: dict[str, list[float]] = {}
    for n in range(repeats):  # a cell is one sample: run the floor's cell a few times
        folder = out / f"sequential-{n}"
        _, status, tail = cli(
            "matrix", "--jobs", "1", "--server", args.floor_server, "--scenario", FLOOR_SCENARIO, "--tls", FLOOR_TLS,
            "--out", str(folder),
        )  # fmt: skip
        if status not in (0, 1):
            raise SystemExit(f"bench: the one-at-a-time run could not run (exit {status}):\n{tail}")
        for cell in results(folder)["cells"]:
            durations.setdefault(cell["client"], []).append(float(cell["duration_s"]))
    ratios = {}
    for impl, floor_s in floor.items():
        cell_median = statistics.median(durations[impl])
        ratios[impl] = {
            "cell_median_s": round(cell_median, 4),
            "in_container_floor_s": round(floor_s, 4),
            "ratio": round(cell_median / floor_s, 2),
        }
    figures["per_client"] = ratios
    figures["cell_over_floor_median"] = max(r["ratio"] for r in ratios.values())
    cores = os.cpu_count() or 1
    ran = [c for c in document["cells"] if c["status"] != "unsupported"]
    cpu_floor = sum(floor.get(c["client"], 0.0) for c in ran) / cores
    figures["cpu_floor_s"] = round(cpu_floor, 1)
    figures["matrix_over_cpu_floor"] = round(seconds / cpu_floor, 2) if cpu_floor else None

    print("bench: the full matrix again, with capture", flush=True)
    _, status, tail = cli("matrix", "--jobs", str(args.jobs), "--capture", "--out", str(out / "capture-on"))
    if status not in (0, 1):
        raise SystemExit(f"bench: the capture matrix could not run (exit {status}):\n{tail}")
    phases = {
        "off": float(document["run"]["seconds"]),
        "on": float(results(out / "capture-on")["run"]["seconds"]),
    }
    figures["capture_phase_s"] = phases
    figures["capture_over_nocapture"] = round(phases["on"] / phases["off"], 2)

    verdicts = {}
    for key, (op, target) in TARGETS.items():
        value = figures.get(key)
        met = value is not None and (value >= target if op == ">=" else value <= target)
        verdicts[key] = {"value": value, "target": f"{op} {target}", "met": met}
    figures["targets"] = verdicts
    (Path("bench.json")).write_text(json.dumps(figures, indent=2) + "\n")
    (out / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")

    m = figures["machine"]
    print(f"\nmachine: {m['host']}, {m['cpu']}, {m['cores']} cores")
    print(f"default matrix: {cells} cells in {seconds:.1f} s -> {figures['cells_per_second']} cells/s")
    for impl, r in ratios.items():
        floor_s = r["in_container_floor_s"]
        print(f"  {impl}: cell median {r['cell_median_s']} s / in-container floor {floor_s} s = {r['ratio']}x")
    over = figures["matrix_over_cpu_floor"]
    print(f"full matrix: {seconds:.1f} s over a CPU floor of {figures['cpu_floor_s']} s = {over}x")
    print(f"capture: {phases['on']:.1f} s on / {phases['off']:.1f} s off = {figures['capture_over_nocapture']}x")
    print(f"cold start to first verdict: {figures['cold_start_first_verdict_s']} s")
    for key, v in verdicts.items():
        print(f"  {'met ' if v['met'] else 'MISSED'} {key} = {v['value']} (target {v['target']})")
    print("wrote bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
