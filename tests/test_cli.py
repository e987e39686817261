"""The command line: one clear line and exit 2 for bad input, never a traceback."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.report import render_text
from harness.scenarios import BY_ID, CATALOGUE


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *argv], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["matrix", "--server", "no-such"], "unknown server implementation 'no-such'"),
        (["matrix", "--client", "wget"], "unknown client implementation 'wget'"),
        (["matrix", "--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["matrix", "--impl", "/nonexistent/folder"], "no impl.toml there"),
        (["impls", "--impl", "/nonexistent/folder"], "no impl.toml there"),
        (["matrix", "--scenario", "nope"], "unknown scenario nope"),
        (["matrix", "--tls", "1.0"], "unknown TLS version '1.0'"),
        (["matrix", "--generation", "11"], "unknown Debian generation 11: choose from 12, 13"),
        (["matrix", "--server", "nginx@14"], "unknown server implementation 'nginx@14'"),
        (["images", "--generation", "14"], "unknown Debian generation 14: choose from 12, 13"),
        (["upgrade", "/nonexistent/results.json"], "cannot read /nonexistent/results.json: no such file"),
        (["certs"], "the following arguments are required: --out"),
        (["certs", "--out", "x", "--key-type", "dsa"], "invalid choice: 'dsa'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], needle: str) -> None:
    result = run_cli(*argv)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unwritable_certs_folder_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli("certs", "--out", str(blocker / "sub"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_certs_command_writes_private_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--out", str(tmp_path)]) == 0
    key = tmp_path / "alternate-tls-certs" / "localhost-client-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "keys mode 0600" in capsys.readouterr().out


def test_scenarios_lists_every_id_with_its_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "no-client-cert" in out and "X509ErrorCode" in out
    assert "node as server: reported:other" in out
    # A [[race]] is listed beside the scenarios it names, with its rule.
    assert "nss as server (tls=1.3): when server-rejected:*_*, also server-rejected:closed (a race) -- NSS's own" in out


def test_scenarios_json_is_the_same_catalogue_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    by_id = {record["id"]: record for record in document["scenarios"]}
    assert list(by_id) == [scenario.id for scenario in CATALOGUE]
    expired = by_id["require-expired-client-cert"]
    assert expired["expected"] == BY_ID["require-expired-client-cert"].expected
    # A stack's difference carries its rule and source, as the text says them ...
    go = [d for d in expired["differences"] if d["impl"] == "go" and d["role"] == "server"]
    assert go and all(d["rule"] and d["source"].startswith("https://") for d in go)
    # ... and a race names the verdicts it holds for and the others it can end in.
    races = [r for r in expired["races"] if r["impl"] == "nss" and r["role"] == "server"]
    assert races == [
        {
            "impl": "nss",
            "role": "server",
            "tls": "1.3",
            "when": ["server-rejected:*_*"],
            "also": ["server-rejected:closed"],
            "rule": races[0]["rule"],
            "source": races[0]["source"],
        }
    ]
    # Every default is there as the catalogue says it, a TLS version's own with its reason.
    for scenario in CATALOGUE:
        record = by_id[scenario.id]
        assert (record["expected"], record["native"]) == (scenario.expected, dict(scenario.native))
        assert [(c["tls"], c["verdict"]) for c in record["by_tls"]] == [(c.tls, c.verdict) for c in scenario.by_tls]


def test_table_shows_servers_by_clients() -> None:
    document = {
        "run": {"counts": {"passed": 1, "failed": 1, "unsupported": 0}},
        "cells": [
            {
                "scenario": "s",
                "tls": "1.3",
                "server": "node",
                "client": "curl",
                "passed": True,
                "status": "passed",
                "observed": "ok",
                "expected": "ok",
            },
            {
                "scenario": "s",
                "tls": "1.3",
                "server": "python",
                "client": "curl",
                "passed": False,
                "status": "failed",
                "observed": "timeout",
                "expected": "ok",
            },
        ],
    }
    text = render_text(document)
    assert "s (TLS 1.3)" in text and "✗ timeout" in text and "✓ ok" in text
    assert text.strip().endswith("1 passed, 1 failed, 0 unsupported")


def test_docker_unreachable_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "PATH": "/usr/bin:/bin"}
    for argv in (["matrix", "--scenario", "trusted-client"], ["images"], ["clean"]):
        result = subprocess.run(
            [sys.executable, "-m", "harness", *argv], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert result.returncode == 2, result.stderr
        assert "Docker is not reachable" in result.stderr and "start dockerd or set DOCKER_HOST" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_tshark_missing_for_capture_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"")
    env = {"PATH": str(tmp_path)}  # no tshark on this PATH
    result = subprocess.run(
        [sys.executable, "-m", "harness", "pcap", "inspect", str(tmp_path / "x.pcap")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "tshark is not installed on this machine" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pcap_inspect_of_a_folder_says_so(tmp_path: Path) -> None:
    result = run_cli("pcap", "inspect", str(tmp_path))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"mtls-harness: the capture {tmp_path} is a folder: name a capture file (handshake.pcap)"
    )


def test_merge_of_a_wrong_shape_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for name, text in (
        ("list.json", "[]"),
        ("null.json", "null"),
        ("run.json", '{"schema": 2, "run": [], "cells": []}'),
    ):
        (tmp_path / name).write_text(text)
        result = run_cli("merge", str(tmp_path / name), "--out", str(tmp_path / "merged"))
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
