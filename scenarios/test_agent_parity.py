"""Parity: a cell run through the client container's agent gives what ``docker exec`` gave.

The matrix runs each client through an agent in its container (harness/agent.py) instead
of one ``docker exec`` per cell. Here every client runs every scenario against the Python
server both ways, and the verdict and the client's exit status must be the same (or both
be outcomes of a race the cell's stack declares, SPEC §14). ``make
test`` compares one TLS version of each client x scenario, alternating (``--parity
sample``, harness/sampling.py); ``make parity`` compares both.

Both ways run in the background, side by side, half of ``--jobs`` each, on pods of their own (not the
matrix's results: a test waiting for the matrix to reach its cell could wait past its
time limit); each test waits for its own cell on both.
"""

from __future__ import annotations

import pytest

from harness import registry
from harness.cells import Cell, plan, schedule_order
from harness.pytest_plugin import Background, Session, parity_cells, raced
from harness.runner import Runner

pytestmark = pytest.mark.docker


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "parity_cell" not in metafunc.fixturenames:
        return
    found = registry.default()
    runnable = [c for c in plan(found, servers=["python"]) if not c.why_unsupported]
    # In the order the background reaches them, so each test waits about one cell.
    cells = schedule_order(parity_cells(metafunc.config, runnable, found), found)
    metafunc.parametrize("parity_cell", cells, ids=[c.id for c in cells])


def _cells(request: pytest.FixtureRequest) -> list[Cell]:
    return [item.callspec.params["parity_cell"] for item in request.session.items if item.module is request.module]


@pytest.fixture(scope="module")
def both_ways(harness: Session, request: pytest.FixtureRequest) -> tuple[Background, Background]:
    """Every cell of this module, once as a ``docker exec`` and once through the agent."""
    cells = _cells(request)
    through_exec = Runner(harness.run, harness.registry, purpose="exec", agents=False)
    through_agent = Runner(harness.run, harness.registry, purpose="agent", agents=True)
    # Side by side, half of --jobs each: together no more client processes than the matrix runs.
    return harness.background(through_exec, cells, share=2), harness.background(through_agent, cells, share=2)


def test_agent_and_docker_exec_agree(both_ways: tuple[Background, Background], parity_cell: Cell) -> None:
    through_exec, through_agent = (side.outcome(parity_cell) for side in both_ways)
    if raced(through_exec, through_agent):
        return  # two outcomes of the stack's declared race (SPEC 14), both checked by raced()
    assert through_exec.observed == through_agent.observed, through_exec.explain() + "\n" + through_agent.explain()
    assert through_exec.exit_code == through_agent.exit_code, through_exec.explain() + "\n" + through_agent.explain()
