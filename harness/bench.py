"""``make bench``: the four speed figures of SPEC §11, measured in one run.

1. cold start: every mtls-harness image removed, then a one-cell matrix; the figure is
   the whole command's wall time (venv already made), an upper bound of "first verdict".
2. default matrix, warm images: cells per second over the whole command.
3. per-cell median over the floor: for each client, the median duration of its cells
   in a one-at-a-time run, over the median of a ``docker exec`` of the same client
   doing nothing (``curl --version``, ``node request-mtls.js --help``,
   ``request-mtls --help``) through the same exec path. The figure is the worst
   client's ratio; the ratio over the bare interpreter is reported beside it.
4. capture on over capture off: the default matrix's cell phase (``run.seconds``) with
   ``--capture`` over the same phase of step 2.

It prints each figure with its target and writes ``bench.json``. Timings are measured
here and nowhere else: no test asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import images, registry
from harness.pods import Run
from harness.scenarios import TUTORIAL_IDS

TARGETS = {
    "cells_per_second": (">=", 8.0),
    "cell_over_floor_median": ("<=", 1.5),
    "capture_over_nocapture": ("<=", 1.3),
    "cold_start_first_verdict_s": ("<=", 120.0),
}
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
    seconds, status, tail = cli(
        "matrix", "--server", found.servers[0], "--client", found.clients[0], "--scenario", "trusted-client",
        "--tls", "1.3", "--out", str(out / "cold"),
    )  # fmt: skip
    if status != 0:
        raise SystemExit(f"bench: the cold-start matrix failed (exit {status}):\n{tail}")
    return seconds


def floors(out: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of do-nothing execs of each client, through Pod.exec: (program, bare)."""
    client = images.connect()
    found = registry.default()
    with Run(client, out / "floor", out / "floor", images=found.images(), capabilities=found.capabilities()) as run:
        pod = run.pod(found.servers[0], purpose="floor")

        def median(impl: str, argv: list[str], workdir: str | None) -> float:
            pod.exec(impl, argv, timeout_s=30, workdir=workdir)  # start the container, warm the cache
            return statistics.median(
                pod.exec(impl, argv, timeout_s=30, workdir=workdir).seconds for _ in range(FLOOR_SAMPLES)
            )

        specs = {name: found.client(name) for name in found.clients}
        program = {name: median(name, list(spec.floor), spec.workdir) for name, spec in specs.items()}
        bare = {name: median(name, list(spec.bare_floor), None) for name, spec in specs.items() if spec.bare_floor}
        return program, bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--skip-cold", action="store_true", help="keep the images (no cold-start figure)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    figures: dict[str, Any] = {"machine": machine(), "jobs": args.jobs}

    print("bench: cold start (removing every mtls-harness image)", flush=True)
    figures["cold_start_first_verdict_s"] = None if args.skip_cold else round(cold_start(out), 2)

    print("bench: default matrix, warm images", flush=True)
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

    print("bench: per-cell median vs the docker exec floor (one cell at a time)", flush=True)
    floor, bare = floors(out)
    args_tutorial = [a for s in TUTORIAL_IDS for a in ("--scenario", s)]
    _, status, tail = cli("matrix", "--jobs", "1", *args_tutorial, "--out", str(out / "sequential"))
    sequential = results(out / "sequential")
    ratios = {}
    for impl, floor_s in floor.items():
        durations = [c["duration_s"] for c in sequential["cells"] if c["client"] == impl]
        ratios[impl] = {
            "cell_median_s": round(statistics.median(durations), 4),
            "floor_median_s": round(floor_s, 4),
            "ratio": round(statistics.median(durations) / floor_s, 2),
            "floor_command": " ".join(registry.default().client(impl).floor),
        }
        if impl in bare:
            ratios[impl]["bare_interpreter_floor_s"] = round(bare[impl], 4)
            ratios[impl]["ratio_over_bare_interpreter"] = round(statistics.median(durations) / bare[impl], 2)
    figures["per_client"] = ratios
    figures["cell_over_floor_median"] = max(r["ratio"] for r in ratios.values())

    print("bench: the default matrix again, with capture", flush=True)
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
        print(f"  {impl}: cell median {r['cell_median_s']} s / floor {r['floor_median_s']} s = {r['ratio']}x")
    print(f"capture: {phases['on']:.1f} s on / {phases['off']:.1f} s off = {figures['capture_over_nocapture']}x")
    print(f"cold start to first verdict: {figures['cold_start_first_verdict_s']} s")
    for key, v in verdicts.items():
        print(f"  {'met ' if v['met'] else 'MISSED'} {key} = {v['value']} (target {v['target']})")
    print("wrote bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
