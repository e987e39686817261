"""Parity: a cell run through the client container's agent gives what ``docker exec`` gave.

The matrix runs each client through an agent in its container (harness/agent.py) instead
of one ``docker exec`` per cell. Here every client runs every scenario, in both TLS
versions, against the Python server both ways, and the verdict and the client's exit
status must be the same.
"""

from __future__ import annotations

import pytest

from harness import registry
from harness.matrix import Runner, plan
from harness.pytest_plugin import Session

pytestmark = pytest.mark.docker

REGISTRY = registry.default()
CELLS = [cell for cell in plan(REGISTRY, servers=["python"]) if not cell.unsupported]


@pytest.fixture(scope="module")
def runners(harness: Session) -> tuple[Runner, Runner]:
    """Two runners on pods of their own: every cell a ``docker exec``, or through the
    agent. Not the matrix's own results: a test waiting for the matrix to reach its cell
    could wait past its time limit."""
    return (
        Runner(harness.run, harness.registry, purpose="exec", agents=False),
        Runner(harness.run, harness.registry, purpose="agent", agents=True),
    )


@pytest.mark.parametrize("parity_cell", CELLS, ids=[c.id for c in CELLS])
def test_agent_and_docker_exec_agree(runners: tuple[Runner, Runner], parity_cell) -> None:  # type: ignore[no-untyped-def]
    exec_runner, agent_runner = runners
    through_exec = exec_runner.run_cell(parity_cell)
    through_agent = agent_runner.run_cell(parity_cell)
    assert through_exec.observed == through_agent.observed, through_exec.explain() + "\n" + through_agent.explain()
    assert through_exec.exit_code == through_agent.exit_code, through_exec.explain() + "\n" + through_agent.explain()
