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
from typing import Any, NoReturn

from harness import __version__, certs, images, registry, results, scenarios
from harness.errors import HarnessError, UsageError


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
    p.add_argument(
        "--impl", action="append", default=[], type=Path, metavar="PATH", help="also build this folder's image"
    )
    p.add_argument(
        "--generation",
        action="append",
        default=[],
        metavar="N",
        help="the Debian generation to build for: 12 (the default) or 13 (repeatable)",
    )

    p = sub.add_parser("impls", help="list the implementations: stack, roles, version, what each does not support")
    p.add_argument("--impl", action="append", default=[], type=Path, metavar="PATH", help="also list this folder")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    p.add_argument("--no-versions", action="store_true", help="do not ask the images for their versions")

    p = sub.add_parser("matrix", help="run the matrix and write results.json, junit.xml and report.html")
    from harness.engine import OPTIONS

    for option in OPTIONS:
        p.add_argument(option.flag, **option.argparse_kwargs())
    p.add_argument("--tables", action="store_true", help="also print a grid per scenario and TLS version")

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

    p = sub.add_parser("diff", help="list the cells whose verdicts changed between two runs (exit 1 if any)")
    p.add_argument("old", type=Path, help="the earlier results.json (or its folder)")
    p.add_argument("new", type=Path, help="the later results.json (or its folder)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the changes as an HTML page")

    p = sub.add_parser(
        "upgrade",
        help="what changes from Debian 12 to 13, cell by cell (exit 1 if a change has no rule)",
        description="Pair every Debian 13 cell (nginx@13-server--curl-client--...) with its Debian 12 cell "
        "(nginx-server--curl-client--...) in the results given, and list the verdicts that changed, by stack "
        "and behaviour. A change is explained only by an expectation of the stack's [generation.13] table. "
        "Exit 0: every change has its rule; 1: a change has none; 2: bad input or nothing to pair.",
    )
    p.add_argument(
        "results",
        type=Path,
        nargs="+",
        help="results.json files (or folders): one cross-generation run, or a Debian 13 run and a Debian 12 run",
    )
    p.add_argument("--json", action="store_true", help="print the changes as JSON")

    p = sub.add_parser("scenarios", help="list the scenario ids, expected verdicts and the stacks that differ")
    p.add_argument("--impl", action="append", default=[], type=Path, metavar="PATH", help="also show this folder's")
    p.add_argument("--json", action="store_true", help="print the catalogue as one JSON document")
    clean = sub.add_parser(
        "clean",
        help="remove the containers and networks of finished or killed runs (running ones are kept)",
    )
    clean.add_argument(
        "--all",
        dest="everything",
        action="store_true",
        help="also remove those of runs still going, here or in another sandbox on this Docker engine",
    )
    return parser


def cmd_certs(args: argparse.Namespace) -> int:
    out = certs.build(args.out, key_type=args.key_type)
    print(f"wrote {out}/{certs.SERVER_PKI}, {out}/{certs.CLIENT_PKI} and {out}/{certs.VARIANTS_DIR} (keys mode 0600)")
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    found = registry.load(args.impl)
    generations = set(args.generation) or {registry.DEFAULT_GENERATION}
    unknown = generations - set(registry.GENERATIONS)
    if unknown:
        raise UsageError(
            f"unknown Debian generation {', '.join(sorted(unknown))}: choose from {', '.join(registry.GENERATIONS)}"
        )
    names = [impl.name for impl in found.impls if impl.generation in generations]
    client = images.connect()
    built = images.ensure_images(client, found, names, rebuild=args.rebuild, say=print)
    for item in built.values():
        state = f"built in {item.seconds:.1f} s" if item.rebuilt else "up to date"
        print(f"{item.tag}  ({state})")
    return 0


def cmd_impls(args: argparse.Namespace) -> int:
    from harness import admission

    found = registry.load(args.impl)
    versions = {} if args.no_versions else admission.versions(found)
    rows = admission.listing(found, versions)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, row in rows.items():
        print(f"{name}  [{', '.join(row['roles'])}]  {row['stack']}  (Debian {row['generation']})")
        print(f"    version: {row['version']}")
        print(f"    image:   {row['image']}{'' if row['builtin'] else '  (from ' + row['folder'] + ')'}")
        for what, why in row["unsupported"].items():
            print(f"    no {what}: {why}")
        for setting in row["settings"]:
            needed = f"; only for {', '.join(setting['needed_by'])}" if setting.get("needed_by") else ""
            print(f"    setting ({setting['role']}): {setting['what']} -- {setting['why']}{needed}")
            print(f"        verdicts it changes: {setting['verdicts']}; source: {setting['source']}")
        if row["differences"]:
            print(f"    differs from the catalogue in {row['differences']} expectation(s) (mtls-harness scenarios)")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    found = registry.load(args.impl)
    records = [_scenario_record(scenario, found) for scenario in scenarios.CATALOGUE]
    if args.json:
        print(json.dumps({"scenarios": records}, indent=2))
        return 0
    for record in records:
        native = ", ".join(f"{k}: {v}" for k, v in record["native"].items())
        print(f"{record['id']:36} {record['expected']:38} {record['summary']}" + (f" [{native}]" if native else ""))
        print(f"{'':36}   why this default: {record['why']} [{record['source']}]")
        for case in record["by_tls"]:
            print(f"{'':36}   TLS {case['tls']}: {case['verdict']} -- {case['reason']}")
        for expect in record["differences"]:
            where = ", ".join(f"{k}={v}" for k in ("tls", "peer") if (v := expect.get(k)))
            print(
                f"{'':36}   {expect['impl']} as {expect['role']}{' (' + where + ')' if where else ''}: "
                f"{expect['verdict']} -- {expect['rule']} [{expect['source']}]"
            )
        for race in record["races"]:
            where = ", ".join(f"{k}={v}" for k in ("tls", "peer") if (v := race.get(k)))
            print(
                f"{'':36}   {race['impl']} as {race['role']}{' (' + where + ')' if where else ''}: "
                f"when {' or '.join(race['when'])}, also {' or '.join(race['also'])} (a race) -- "
                f"{race['rule']} [{race['source']}]"
            )
    return 0


def _scenario_record(scenario: scenarios.Scenario, found: registry.Registry) -> dict[str, Any]:
    """One scenario as ``scenarios`` shows it: its default verdicts, the stacks whose
    expectations differ from them, and the races that can hold for its cells."""
    differences = [
        {
            "impl": impl.name,
            "role": expect.role,
            **({"tls": expect.tls} if expect.tls else {}),
            **({"peer": ",".join(expect.peer)} if expect.peer else {}),
            "verdict": expect.verdict,
            "rule": expect.rule,
            "source": expect.source,
        }
        for impl in found.impls
        for expect in impl.expectations
        if expect.matches(scenario.id, expect.tls or "", (expect.peer or ("",))[0])
    ]
    # The verdicts this scenario's cells can be expected to end in: a race holds for some.
    verdicts = {scenario.default(tls)[0] for tls in ("1.2", "1.3")} | {d["verdict"] for d in differences}
    races = [
        {
            "impl": impl.name,
            "role": race.role,
            **({"tls": race.tls} if race.tls else {}),
            **({"peer": ",".join(race.peer)} if race.peer else {}),
            "when": list(race.when),
            "also": list(race.also),
            "rule": race.rule,
            "source": race.source,
        }
        for impl in found.impls
        for race in impl.races
        if any(race.matches(scenario.id, tls, (race.peer or ("",))[0]) for tls in ("1.2", "1.3"))
        and any(race.holds_for(v) for v in verdicts)
    ]
    return {
        "id": scenario.id,
        "summary": scenario.summary,
        "expected": scenario.expected,
        "why": scenario.why,
        "source": scenario.source,
        "native": dict(scenario.native),
        "by_tls": [{"tls": c.tls, "verdict": c.verdict, "reason": c.reason} for c in scenario.by_tls],
        "tls": list(scenario.tls),
        "tutorial": scenario.tutorial,
        "differences": differences,
        "races": races,
    }


def cmd_pcap(args: argparse.Namespace) -> int:
    from harness import capture

    for path, what in ((args.file, "capture"), (args.keylog, "key log")):
        if path is not None and path.is_dir():
            raise HarnessError(f"the {what} {path} is a folder: name a capture file (handshake.pcap)")
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

    documents = [
        (str(path / "results.json" if path.is_dir() else path), results.load_results(path)) for path in args.results
    ]
    merged = results.merge_documents(documents)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(merged, indent=2) + "\n")
    report.write_html(merged, args.out / "report.html")
    summary = report.summary_line(merged)
    print(f"merged {len(documents)} shard(s): {summary}; wrote {args.out}/results.json and report.html")
    return 0 if merged["run"]["counts"]["failed"] == 0 else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from harness import diff

    comparison = diff.compare(
        results.load_results(args.old), results.load_results(args.new), str(args.old), str(args.new)
    )
    print(diff.render_text(comparison))
    if args.html is not None:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(diff.render_html(comparison))
    return 1 if comparison.changed or comparison.only_new or comparison.only_old else 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    import dataclasses

    from harness import upgrade

    found = upgrade.compare([results.load_results(path) for path in args.results])
    if found.compared == 0:
        raise UsageError(
            "no cell of a later Debian generation with its Debian 12 cell in the results given: "
            "run `mtls-harness matrix --generation 12 --generation 13`, or give a Debian 13 run and a Debian 12 run"
        )
    if args.json:
        print(json.dumps({**dataclasses.asdict(found), "unexplained": len(found.unexplained)}, indent=2))
    else:
        print(upgrade.render_text(found))
    return 1 if found.unexplained else 0


def cmd_clean(args: argparse.Namespace) -> int:
    from harness.pods import clean_all

    containers, networks, kept = clean_all(images.connect(), everything=args.everything)
    print(f"removed {containers} container(s) and {networks} network(s)")
    if kept:
        print(f"kept {len(kept)} run(s) still going ({', '.join(kept)}); --all removes them too")
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness import engine, report

    options = engine.Options.from_values(vars(args))
    engine.plan(options)  # every option checked before anything is created or deleted
    console = Console()
    progress: report.LiveProgress | None = None

    def start(total: int) -> None:
        nonlocal progress
        console.print(f"running {total} cell(s); artefacts in {options.out.resolve()}")
        progress = report.LiveProgress(total).__enter__()

    def done(result: results.CellResult) -> None:
        if progress is not None:
            progress.cell_done(result.status != "failed")

    try:
        outcome = engine.run_matrix(
            options, say=lambda line: console.print(f"[images] {line}"), on_start=start, on_done=done
        )
    except KeyboardInterrupt:
        if progress is not None:
            progress.__exit__(None, None, None)
        results = options.out.resolve() / "results.json"
        written = f"; the {len(list_cells(results))} finished cell(s) are in {results}" if results.is_file() else ""
        print(f"mtls-harness: interrupted{written}; every container of the run was removed", file=sys.stderr)
        return 130
    if progress is not None:
        progress.__exit__(None, None, None)
    document = outcome.document
    if document is None:
        raise HarnessError("no cell ran")
    if args.tables:
        console.print(report.tables(document))
    else:
        for line in report.scenario_lines(document, min(console.width, 100)):
            console.print(line, markup=False, highlight=False)
    for result in sorted(outcome.results.values(), key=lambda r: r.cell.id):
        if result.status == "failed":
            console.print(result.explain(), markup=False, highlight=False)
    console.print(f"results: {options.out.resolve() / 'results.json'}")
    console.print(report.summary_line(document), style="bold")
    return 0 if document["run"]["counts"]["failed"] == 0 else 1


def list_cells(results: Path) -> list[object]:
    try:
        cells: list[object] = json.loads(results.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return cells


COMMANDS = {
    "certs": cmd_certs,
    "images": cmd_images,
    "matrix": cmd_matrix,
    "impls": cmd_impls,
    "scenarios": cmd_scenarios,
    "pcap": cmd_pcap,
    "merge": cmd_merge,
    "clean": cmd_clean,
    "diff": cmd_diff,
    "upgrade": cmd_upgrade,
}


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C and SIGTERM end the run the same way, whatever this process inherited
    # (a shell that ignores SIGINT for background jobs, nohup).
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
        print("mtls-harness: interrupted", file=sys.stderr)
        return 130
