"""Copy real outputs of a finished matrix run beside each client's manifest.

Usage: python tests/tools/record_outputs.py OUT_DIR [IMPL ...]

Writes ``images/<client>/recorded/<cell-id>.json`` for one cell per (server, client,
expected verdict and native words, TLS version, and the other outcome of a declared race
when it ended in one: ``<cell-id>.<verdict>.json``, ``:`` written ``=``) of the run
(only cells whose server and client are among IMPL, when given), so that every mapping
of every error map is exercised on what a real stack printed. A recording holds only the
evidence (exit status, stdout, stderr, the server's log for the cell) and the versions;
the verdict a test expects comes from the catalogue and the manifests, never from what
the run observed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2] / "images"


def main(out_dir: str, only: list[str]) -> int:
    results = json.loads((Path(out_dir) / "results.json").read_text())
    versions = {name: impl.get("version", "") for name, impl in results["run"].get("implementations", {}).items()}
    seen: set[tuple[str, str, str, str, str]] = set()
    for record in results["cells"]:
        if only and not {record["server"], record["client"]} <= set(only):
            continue
        if record["status"] != "passed":  # a failed cell is a question, not a fixture
            continue
        # Another outcome of a declared race is recorded apart, under its verdict.
        other = record["observed"] if record["observed"] != record["expected"] else ""
        key = (
            record["server"],
            record["client"],
            record["expected"],
            str(record["expected_native"]),
            record["tls"],
            other,
        )
        if key in seen:
            continue
        seen.add(key)
        cell_dir = Path(record["artifacts"]["dir"])
        recording = {
            "cell": record["id"],
            "exit_code": record["exit_code"],
            "stdout": (cell_dir / "client.stdout").read_text(),
            "stderr": (cell_dir / "client.stderr").read_text(),
            "server_log": (cell_dir / "server.log").read_text(),
            "versions": {k: v for k, v in versions.items() if k in (record["server"], record["client"])},
        }
        # A later generation's client (node@13) shares its stack's folder and recorded/.
        folder = IMAGES / record["client"].split("@", 1)[0] / "recorded"
        folder.mkdir(exist_ok=True)
        name = record["id"] + (f".{other.replace(':', '=')}" if other else "")
        (folder / f"{name}.json").write_text(json.dumps(recording, indent=1) + "\n")
    print(f"wrote {len(seen)} recordings under {IMAGES}/*/recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
