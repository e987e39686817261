"""The ``mtls-harness`` command line (SPEC §3).

Exit status: 0 every cell as expected; 1 some cell not as expected; 2 usage or
environment error, always one line on stderr that says what to do; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from harness import __version__, certs, images, impls, matrix, scenarios
from harness.errors import HarnessError, UsageError

PROJECT = Path(__file__).resolve().parent.parent
SCENARIOS_DIR = PROJECT / "scenarios"


class Parser(argparse.ArgumentParser):
    """argparse with the harness's one-line error and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="mtls-harness", description="Containerised interoperability test harness for mutual TLS.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("certs", help="write both PKIs (tutorial layout) and the scenario variants")
    p.add_argument(
        "--out", required=True, type=Path, help="folder to write tls-certs/, alternate-tls-certs/, variants/"
    )
    p.add_argument("--key-type", choices=certs.KEY_TYPES, default="ec", help="EC P-256 (default) or RSA-2048")

    p = sub.add_parser("images", help="build every image whose inputs changed; print the tags")
    p.add_argument("--rebuild", action="store_true", help="rebuild even when nothing changed")

    p = sub.add_parser("matrix", help="run the matrix (pytest underneath) and write results.json")
    p.add_argument(
        "--server", action="append", default=[], metavar="IMPL", help=f"one of {', '.join(impls.SERVERS)} (repeatable)"
    )
    p.add_argument(
        "--client", action="append", default=[], metavar="IMPL", help=f"one of {', '.join(impls.CLIENTS)} (repeatable)"
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="ID",
        help="a scenario id (repeatable; see `mtls-harness scenarios`)",
    )
    p.add_argument("--tls", action="append", default=[], metavar="VERSION", help="1.2 or 1.3 (repeatable)")
    p.add_argument("--out", type=Path, default=Path("out/matrix"), help="output folder (default out/matrix)")
    p.add_argument("--jobs", type=int, default=8, help="cells run at once (default 8; 1 runs them one by one)")
    p.add_argument(
        "--capture", action="store_true", help="capture each cell's handshake and assert on the wire (needs tshark)"
    )
    p.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST-ARG", help="extra pytest arguments after --, e.g. -- -k curl"
    )

    p = sub.add_parser("pcap", help="inspect captured handshakes")
    pcap_sub = p.add_subparsers(dest="pcap_command", required=True, parser_class=Parser)
    q = pcap_sub.add_parser("inspect", help="summarize each TLS connection of a capture")
    q.add_argument("file", type=Path, help="a pcap or pcapng file")
    q.add_argument(
        "--keylog", type=Path, help="an SSLKEYLOGFILE to decrypt TLS 1.3 (not needed when secrets are injected)"
    )
    q.add_argument("--json", action="store_true", help="print a JSON object instead of text")

    p = sub.add_parser("merge", help="merge shards' results.json into one results.json and report.html")
    p.add_argument("results", nargs="+", type=Path, help="results.json files (or folders holding one)")
    p.add_argument("--out", type=Path, required=True, help="folder for the merged results.json and report.html")

    sub.add_parser("scenarios", help="list the scenario ids with their expected verdicts")
    sub.add_parser("clean", help="remove every container and network the harness created")
    return parser


def cmd_certs(args: argparse.Namespace) -> int:
    out = certs.build(args.out, key_type=args.key_type)
    print(f"wrote {out}/{certs.SERVER_PKI}, {out}/{certs.CLIENT_PKI} and {out}/{certs.VARIANTS_DIR} (keys mode 0600)")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    client = images.connect()
    built = images.ensure_images(client, images.IMAGES, rebuild=args.rebuild, say=print)
    for item in built.values():
        state = f"built in {item.seconds:.1f} s" if item.rebuilt else "up to date"
        print(f"{item.tag}  ({images.image_ref(item.name)}, {state})")
    return 0


def cmd_scenarios(_args: argparse.Namespace) -> int:
    for scenario in scenarios.CATALOGUE:
        print(f"{scenario.id:36} {scenario.expected:42} {scenario.summary}")
        for override in scenario.overrides:
            where = ", ".join(
                f"{k}={v}"
                for k, v in (("server", override.server), ("client", override.client), ("tls", override.tls))
                if v
            )
            print(f"{'':36}   {where}: {override.verdict} -- {override.reason}")
    return 0


def cmd_pcap(args: argparse.Namespace) -> int:
    from harness import capture

    for path, what in ((args.file, "capture"), (args.keylog, "key log")):
        if path is not None and not path.is_file():
            raise HarnessError(f"cannot read the {what} {path}: no such file")
    connections = capture.summarize(args.file, args.keylog)
    if args.json:
        print(json.dumps(capture.as_json(connections), indent=2))
    else:
        print(capture.describe(connections))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from harness import report

    documents = []
    for path in args.results:
        file = path / "results.json" if path.is_dir() else path
        try:
            documents.append((str(file), json.loads(file.read_text())))
        except FileNotFoundError as exc:
            raise UsageError(f"cannot read {file}: no such file") from exc
        except ValueError as exc:
            raise UsageError(f"{file} is not JSON: {exc}") from exc
    merged = matrix.merge_documents(documents)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(merged, indent=2) + "\n")
    report.write_html(merged, args.out / "report.html")
    summary = report.summary_line(merged)
    print(f"merged {len(documents)} shard(s): {summary}; wrote {args.out}/results.json and report.html")
    return 0 if merged["run"]["counts"]["failed"] == 0 else 1


def cmd_clean(_args: argparse.Namespace) -> int:
    from harness.pods import clean_all

    containers, networks = clean_all(images.connect())
    print(f"removed {containers} container(s) and {networks} network(s)")
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    import pytest

    cells = matrix.plan(args.server, args.client, args.scenario, args.tls)
    if not SCENARIOS_DIR.is_dir():
        raise HarnessError(f"{SCENARIOS_DIR} is missing: run mtls-harness from a clone of the repository")
    images.connect()  # a clear exit 2 before pytest starts when Docker is unreachable
    if args.capture:
        from harness import capture

        capture.require_tshark()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").unlink(missing_ok=True)
    pytest_args = [
        str(SCENARIOS_DIR / "test_matrix.py"),
        f"--rootdir={PROJECT}",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--out={out}",
        f"--junitxml={out / 'junit.xml'}",
    ]
    if args.capture:
        pytest_args.append("--capture-pcap")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    pytest_args.append(f"--jobs={args.jobs}")
    for flag, values in (
        ("--server", args.server),
        ("--client", args.client),
        ("--scenario", args.scenario),
        ("--tls", args.tls),
    ):
        pytest_args += [f"{flag}={value}" for value in values]
    print(f"running {len(cells)} cell(s); artefacts in {out}")
    status = int(pytest.main([*pytest_args, *args.pytest_args]))
    results = out / "results.json"
    if results.is_file():
        from rich.console import Console

        from harness import report

        document = json.loads(results.read_text())
        console = Console()
        console.print(report.tables(document))
        console.print(f"results: {results}")
        console.print(report.summary_line(document), style="bold")
    if status == 0:
        return 0
    if status == 1:
        return 1
    if status == 2:
        return 130
    raise HarnessError(f"pytest ended with status {status}; see the output above")


COMMANDS = {
    "certs": cmd_certs,
    "images": cmd_images,
    "matrix": cmd_matrix,
    "scenarios": cmd_scenarios,
    "pcap": cmd_pcap,
    "merge": cmd_merge,
    "clean": cmd_clean,
}


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"mtls-harness: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"mtls-harness: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mtls-harness: interrupted; containers of this run were removed", file=sys.stderr)
        return 130
