"""Bring your own implementation (SPEC §13), and the harness outside a clone.

The worked example (examples/node-https-service) goes through the admission check and
the matrix exactly as the README shows; a copy whose wrapper ignores unknown flags is
refused with one line. An installed package (not this clone) lists the implementations
and runs a cell from another folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from harness.schema import validate_results

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "node-https-service"


def harness(*argv: str, cwd: Path | None = None, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "harness", *argv], capture_output=True, text=True, timeout=600, cwd=cwd, check=False
    )


def test_the_worked_example_is_admitted_and_runs_against_every_client(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = harness(
        "matrix", "--impl", str(EXAMPLE), "--server", "my-node-service", "--client", "curl", "--client", "python",
        "--tls", "1.3", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "admitted my-node-service" in result.stdout
    document = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in document["cells"]}
    no_cert = cells["my-node-service-server--curl-client--no-client-cert--tls1.3"]
    assert (no_cert["observed"], no_cert["native"]) == ("reported:no-cert", "UNABLE_TO_GET_ISSUER_CERT")
    revoked = cells["my-node-service-server--python-client--revoked-client-cert--tls1.3"]
    assert revoked["status"] == "unsupported" and "no CRL setting" in revoked["reason"]
    assert document["run"]["implementations"]["my-node-service"]["builtin"] is False
    validate_results(document, "the example's results.json")  # schema 2, harness/schema/results.schema.json


def test_a_copy_that_ignores_unknown_flags_is_refused_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken-service"
    shutil.copytree(EXAMPLE, broken)
    wrapper = broken / "server-mtls"
    text = wrapper.read_text()
    wrapper.write_text(text.replace('echo "server-mtls: unknown option $1" >&2; echo "$usage" >&2; exit 2', "shift"))
    manifest = broken / "impl.toml"
    manifest.write_text(manifest.read_text().replace('name = "my-node-service"', 'name = "broken-service"'))
    result = harness(
        "matrix", "--impl", str(broken), "--server", "broken-service", "--client", "curl", "--scenario",
        "trusted-client", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert "broken-service is not admitted: its server must exit 2 on an unknown flag" in line
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_installed_package_runs_outside_the_clone(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".venv", "out", ".git", "*.egg-info", "build", "__pycache__")
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # The dependencies are this environment's; the package itself is a real, non-editable
    # install of a copy of the source, built by pip as a user's `pip install .` builds it.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps-of-the-test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    shutil.rmtree(source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import harness, mtls_harness_images; print(harness.__file__, mtls_harness_images.__file__)"],
        capture_output=True, text=True, cwd=elsewhere, check=True,
    ).stdout  # fmt: skip
    assert str(venv) in where and str(REPO) not in where
    listed = harness("impls", cwd=elsewhere, python=python)
    assert listed.returncode == 0, listed.stderr
    assert "node  [server, client]" in listed.stdout and "curl  [client]" in listed.stdout
    env_out = elsewhere / "out"
    ran = harness(
        "matrix", "--server", "python", "--client", "curl", "--scenario", "trusted-client", "--tls", "1.3",
        "--out", str(env_out), cwd=elsewhere, python=python,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert json.loads((env_out / "results.json").read_text())["run"]["counts"]["passed"] == 1
    assert os.listdir(elsewhere) == ["out"]
