"""report.html and merge: pure rendering from results documents, then a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import report
from harness.errors import UsageError
from harness.results import merge_documents


def record(
    server: str, client: str, scenario: str, tls: str, observed: str, expected: str, **extra: object
) -> dict[str, object]:
    return {
        "id": f"{server}-server--{client}-client--{scenario}--tls{tls}",
        "server": server,
        "client": client,
        "scenario": scenario,
        "tls": tls,
        "expected": expected,
        "expected_native": extra.get("expected_native"),
        "observed": observed,
        "native": extra.get("native", ""),
        "passed": observed == expected,
        "status": "passed" if observed == expected else "failed",
        "reason": extra.get("reason"),
        "source": extra.get("source"),
        "duration_s": 0.1,
        "command": "curl https://localhost:10000",
        "server_command": "server-mtls --port 10000",
        "exit_code": 0,
        "artifacts": extra.get("artifacts", {}),
    }


def document(*cells: dict[str, object], run_id: str = "r1") -> dict[str, object]:
    return {
        "schema": 2,
        "run": {
            "run_id": run_id,
            "started": "2026-11-27T17:00:00+00:00",
            "finished": "2026-11-27T17:01:00+00:00",
            "implementations": {
                "node": {
                    "stack": "OpenSSL 3.0",
                    "roles": ["server"],
                    "image": "mtls-harness/node:1",
                    "version": "v18 <b>",
                }
            },
            "counts": {"cells": len(cells), "passed": 1, "failed": 1, "unsupported": 0},
        },
        "scenarios": {},
        "cells": list(cells),
    }


SAMPLE = document(
    record(
        "node",
        "curl",
        "no-client-cert",
        "1.3",
        "reported:no-cert",
        "reported:no-cert",
        native="UNABLE_TO_GET_ISSUER_CERT",
        artifacts={"client_stdout": "/run/out/cells/a/client.stdout", "pcap": "/run/out/cells/a/handshake.pcap"},
    ),
    record(
        "python",
        "node",
        "non-ca-issuer",
        "1.2",
        "reported:other",
        "reported:invalid-ca",
        reason="rule <why>",
        source="https://example.invalid/src.c#L1",
        native="X",
    ),
)


def test_html_has_a_grid_per_scenario_and_tls_with_states_and_links() -> None:
    page = report.render_html(SAMPLE, Path("/run/out"))
    assert page.count('<table class="grid"') == 2
    assert 'td class="pass"' in page and 'td class="fail"' in page
    assert 'href="cells/a/client.stdout"' in page and 'href="cells/a/handshake.pcap"' in page
    assert "expected: <code>reported:invalid-ca</code>" in page
    assert "native: <code>UNABLE_TO_GET_ISSUER_CERT</code>" in page
    assert "source: https://example.invalid/src.c#L1" in page
    assert "stack rule: rule &lt;why&gt;" in page  # escaped
    assert "v18 &lt;b&gt;" in page and "v18 <b>" not in page
    for name in ("server", "client", "scenario"):
        assert f'data-filter="{name}"' in page


def test_merge_combines_shards_and_refuses_overlap() -> None:
    a = document(SAMPLE["cells"][0], run_id="a")  # type: ignore[index]
    b = document(SAMPLE["cells"][1], run_id="b")  # type: ignore[index]
    merged = merge_documents([("a", a), ("b", b)])
    assert merged["run"]["counts"] == {"cells": 2, "passed": 1, "failed": 1, "unsupported": 0}
    assert [s["source"] for s in merged["run"]["shards"]] == ["a", "b"]
    with pytest.raises(UsageError, match="is in two shards"):
        merge_documents([("a", a), ("a2", a)])


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ([], "is not a results.json of schema 2 (found schema 'list')"),
        (None, "is not a results.json of schema 2"),
        ({**SAMPLE, "schema": 1}, "found schema 1"),
        ({**SAMPLE, "run": []}, "at run: [] is not of type 'object'"),
        ({**SAMPLE, "cells": [{"server": "x"}]}, "at cells/0: 'id' is a required property"),
        ({**SAMPLE, "cells": [{**SAMPLE["cells"][0], "tls": "1.1"}]}, "at cells/0/tls"),  # type: ignore[index]
    ],
)
def test_merge_says_in_one_line_what_is_wrong_with_a_shard(shard: object, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        merge_documents([("shard.json", shard)])  # type: ignore[list-item]
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_merge_command_writes_results_and_report(tmp_path: Path) -> None:
    for name, cell in (("node", SAMPLE["cells"][0]), ("python", SAMPLE["cells"][1])):  # type: ignore[index]
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(document(cell, run_id=name)))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "merge",
            str(tmp_path / "node"),
            str(tmp_path / "python"),
            "--out",
            str(tmp_path / "all"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1  # one merged cell is not as expected
    assert "1 passed, 1 failed" in result.stdout
    assert json.loads((tmp_path / "all" / "results.json").read_text())["run"]["counts"]["cells"] == 2
    assert (tmp_path / "all" / "report.html").is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    report.write_html(SAMPLE, page)
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-500:]
    dom = result.stdout
    assert dom.count('class="grid"') == 2
    assert "no-client-cert" in dom and "✓ reported:no-cert" in dom
    assert 'td class="fail"' in dom


def test_the_terminal_summary_is_one_line_per_scenario_within_80_columns() -> None:
    stacks = ["go", "rustls", "gnutls", "java", "nss", "erlang", "haproxy", "apache", "lighttpd-wolfssl", "nginx"]
    cells = [
        dict(
            record(server, "curl", "require-not-yet-valid-client-cert", tls, "ok", "ok"),
            expected_by=server if server != "nginx" else None,
        )
        for server in stacks
        for tls in ("1.2", "1.3")
    ]
    cells.append(record("go", "curl", "no-client-cert", "1.3", "ok", "reported:no-cert"))
    lines = report.scenario_lines(document(*cells), width=80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].split() == ["require-not-yet-valid-client-cert", "20", "20", "0", "0"]
    assert not any(line.rstrip().endswith("-") for line in lines)  # never "lighttpd-" / "wolfssl"
    differ = " ".join(line.strip() for line in lines[2:-1])
    assert differ.startswith("differ: apache, erlang, gnutls, go, haproxy, java, lighttpd-wolfssl, nss, rustls")
    assert lines[-1].split() == ["no-client-cert", "1", "0", "1", "0"]  # no stack differs: no second line


def test_the_report_shows_the_differences_first_with_their_rules(tmp_path: Path) -> None:
    go_rule = "the Go client withholds a chain no named CA issued"
    cells = [
        dict(
            record(server, "go", "leaf-without-intermediate", tls, "reported:no-cert", "reported:no-cert"),
            expected_by="go",
            reason=go_rule,
            source="https://example.invalid/go",
        )
        for server in ("node", "python")
        for tls in ("1.2", "1.3")
    ]
    cells.append(record("node", "curl", "leaf-without-intermediate", "1.3", "reported:untrusted", "reported:untrusted"))
    cells.append(record("node", "go", "no-client-cert", "1.3", "reported:no-cert", "reported:no-cert"))
    doc = document(*cells)
    doc["scenarios"] = {"leaf-without-intermediate": {"summary": "s", "expected": "reported:untrusted", "by_tls": {}}}
    [entry] = report.differences(doc)
    assert (entry["stack"], entry["role"], entry["verdict"], entry["cells"]) == ("go", "client", "reported:no-cert", 4)
    assert entry["peers"] == {"node", "python"} and entry["tls"] == {"1.2", "1.3"}
    page = report.render_html(doc, tmp_path)
    assert page.index('id="differences"') < page.index("Every cell")
    assert go_rule in page and 'href="#scenario-leaf-without-intermediate"' in page
    assert 'id="scenario-leaf-without-intermediate"' in page and 'id="stack-go"' in page
    assert "default: <code>reported:untrusted</code>" in page
    # what the stack does in every scenario: the rest get the default
    assert 'the default verdict: <a href="#scenario-no-client-cert">no-client-cert</a>' in page


def big_document(cells_wanted: int = 12_000) -> dict[str, object]:
    """A results document the size of the full matrix of every stack and more: the
    catalogue's scenarios x 2 TLS versions x invented server and client names."""
    from harness.scenarios import CATALOGUE

    side = 1
    while len(CATALOGUE) * 2 * side * side < cells_wanted:
        side += 1
    servers = [f"server{n:02d}" for n in range(side)]
    clients = [f"client{n:02d}" for n in range(side)]
    cells = []
    for scenario in CATALOGUE:
        for tls in ("1.2", "1.3"):
            for n, server in enumerate(servers):
                for m, client in enumerate(clients):
                    odd = (n + m) % 7 == 0
                    cell = record(
                        server, client, scenario.id, tls, "ok" if odd else scenario.expected, scenario.expected
                    )
                    if odd:
                        cell.update(expected="ok", passed=True, status="passed", expected_by=server, reason="a rule")
                    cells.append(cell)
    doc = document(*cells[:cells_wanted])
    doc["scenarios"] = {s.id: {"summary": s.summary, "expected": s.expected, "by_tls": {}} for s in CATALOGUE}
    return doc


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_a_report_of_12000_cells_opens_in_chromium_and_its_filters_answer(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """Figures, not assertions on time (SPEC §11): how long the page takes to load and a
    filter to apply, as junit properties and on stdout."""
    doc = big_document()
    page = tmp_path / "report.html"
    report.write_html(doc, page)
    probe = (
        "<script>window.addEventListener('load', () => {"
        "const loaded = performance.now();"
        "const box = document.querySelector('input[data-filter=\"server\"]');"
        "const t0 = performance.now(); box.checked = false;"
        "box.dispatchEvent(new Event('change', {bubbles: true}));"
        "const filtered = performance.now() - t0;"
        "const hidden = document.querySelectorAll('tr[data-server][hidden]').length;"
        "document.body.setAttribute('data-figures', JSON.stringify({loaded, filtered, hidden}));"
        "});</script></body>"
    )
    page.write_text(page.read_text().replace("</body>", probe))
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=60000",
        "--dump-dom",
        page.as_uri(),
    ]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-500:]
    import re

    found = re.search(r"data-figures=\"([^\"]+)\"", result.stdout)
    assert found, "the page never finished loading"
    figures = json.loads(found.group(1).replace("&quot;", '"'))
    assert figures["hidden"] > 0  # the filter acted: one server's rows are hidden in every grid
    line = (
        f"report.html with {len(doc['cells'])} cells ({page.stat().st_size / 1e6:.1f} MB): load event at "
        f"{figures['loaded']:.0f} ms, one filter applied in {figures['filtered']:.0f} ms, "
        f"chromium --dump-dom {wall:.1f} s"
    )
    record_property("report_figures", line)
    print(line)


def test_a_stack_name_is_never_split_across_lines() -> None:
    names = ["lighttpd-openssl", "lighttpd-gnutls", "lighttpd-mbedtls", "lighttpd-wolfssl", "erlang", "go", "nss"]
    cells = [dict(record(n, "curl", "no-client-cert", "1.3", "ok", "ok"), expected_by=n) for n in names]
    for width in range(60, 81):
        lines = report.scenario_lines(document(*cells), width=width)
        words = {w.strip(",") for line in lines[2:] for w in line.split()}
        assert set(names) <= words, (width, lines)


def test_a_racy_cell_shows_every_verdict_its_stack_can_end_in() -> None:
    racy = record(
        "nss",
        "java",
        "require-no-client-cert",
        "1.3",
        "server-rejected:closed",
        "server-rejected:certificate_required",
        reason="a race between the two stacks",
        source="https://example.invalid/ssl3con.c#L2827",
    )
    racy.update({"racy": ["server-rejected:closed"], "passed": True, "status": "passed", "expected_by": "nss"})
    page = report.render_html(document(racy), Path("/run/out"))
    assert "or <code>server-rejected:closed</code> (racy: the stack's own race)" in page
    assert "✓ server-rejected:closed ~" in page
    (entry,) = report.differences(document(racy))
    assert entry["verdict"] == "server-rejected:certificate_required or server-rejected:closed"


def test_a_race_declared_apart_from_a_default_verdict_is_a_difference_with_its_own_rule() -> None:
    """A [[race]] on a cell the catalogue's default decides: the cell shows the race's rule,
    and the differences list it under the stack that declares it."""
    racy = record(
        "go", "curl", "require-no-client-cert", "1.3", "server-rejected:closed", "server-rejected:certificate_required"
    )
    race = {
        "by": "go",
        "role": "server",
        "also": ["server-rejected:closed"],
        "rule": "net/http closes at once",
        "source": "https://example.invalid/server.go#L1873",
    }
    racy.update({"racy": ["server-rejected:closed"], "races": [race], "passed": True, "status": "passed"})
    page = report.render_html(document(racy), Path("/run/out"))
    assert "race (go): net/http closes at once" in page
    (entry,) = report.differences(document(racy))
    assert (entry["stack"], entry["role"], entry["rule"]) == ("go", "server", "net/http closes at once")
    assert entry["verdict"] == "server-rejected:certificate_required or server-rejected:closed"
    assert entry["seen"] == {"server-rejected:closed": 1}
    assert "a race: seen this run, server-rejected:closed in 1" in page


def test_an_expectation_and_a_race_of_the_other_role_are_two_differences_each_with_its_rule() -> None:
    """A Java server's [[expect]] and a Java client's [[race]] on the same cell: two rows, by
    role (not guessed from the name, which both sides share), and an outcome outside the
    declared ones is not counted as seen."""
    cell = record(
        "java",
        "java",
        "require-expired-client-cert",
        "1.2",
        "ok",
        "server-rejected:certificate_unknown",
        reason="JSSE's own alert",
        source="https://example.invalid/Alert.java#L1",
    )
    race = {
        "by": "java",
        "role": "client",
        "also": ["server-rejected:closed"],
        "rule": "SSLSocket writes each message",
        "source": "https://example.invalid/CertificateMessage.java#L335",
    }
    cell.update({"racy": ["server-rejected:closed"], "races": [race], "expected_by": "java"})
    expect, raced = sorted(report.differences(document(cell)), key=lambda e: e["role"], reverse=True)
    assert (expect["role"], expect["verdict"], expect["rule"]) == (
        "server",
        "server-rejected:certificate_unknown",
        "JSSE's own alert",
    )
    assert (raced["role"], raced["verdict"], raced["rule"]) == (
        "client",
        "server-rejected:certificate_unknown or server-rejected:closed",
        "SSLSocket writes each message",
    )
    assert raced["seen"] == {} and raced["failed"] == 1


def test_a_clients_expectation_on_a_cell_whose_server_is_the_same_stack_is_the_clients() -> None:
    """node-server--node-client: the name alone would say server; the recorded role says client."""
    cell = record(
        "node",
        "node",
        "rsa1024-client-cert",
        "1.3",
        "client-error:weak",
        "client-error:weak",
        reason="OpenSSL's client refuses to load the key at security level 2",
        source="https://example.invalid/ssl_rsa.c#L212",
    )
    cell.update({"expected_by": "node", "expected_role": "client"})
    (entry,) = report.differences(document(cell))
    assert (entry["stack"], entry["role"]) == ("node", "client")
    assert entry["peers"] == {"node"}
    # A results.json from before expected_role existed keeps the old reading by name.
    del cell["expected_role"]
    (entry,) = report.differences(document(cell))
    assert entry["role"] == "server"


def test_the_report_shows_every_setting_a_wrapper_makes_beyond_its_stacks_defaults() -> None:
    doc = document()
    doc["run"]["implementations"]["node"]["settings"] = [  # type: ignore[index]
        {
            "role": "server",
            "what": "SSL_OP_NO_TICKET",
            "why": "so a renegotiation asks <again>",
            "source": "https://example.invalid/doc",
            "verdicts": "none",
            "needed_by": ["per-path-client-auth"],
        }
    ]
    page = report.render_html(doc, Path("/run/out"))
    assert '<section id="settings">' in page
    assert "<code>SSL_OP_NO_TICKET</code>" in page and "so a renegotiation asks &lt;again&gt;" in page
    assert "only for per-path-client-auth" in page
    assert '<section id="settings">' not in report.render_html(document(), Path("/run/out"))
