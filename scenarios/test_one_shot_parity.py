"""Parity: a client's batch worker gives, in every cell, what the one-shot program gives.

The matrix serves the clients whose manifest declares a batch worker ([client.batch]:
Node and Python) from one long-lived process each (harness/agent.py, images/CONTRACT.md
"Batch workers"). Here the matrix cells of each such client run again as the tutorial
runs them, a fresh process of the one-shot program per cell, on pods of their own, and
the verdict, the stack's own words, the exit status and the body printed must be the
same (or both be outcomes of a race the cell's stack declares, SPEC §14). OpenSSL's
error strings start with the id of the thread that raised them
(``0078056F167F0000:error:…``): one process's requests share it, processes do not; it is
left out of the comparison, and so is a time of day (Go's "current time …").
``make test`` compares one TLS version of each server x client x scenario, alternating
(``--parity sample``, harness/sampling.py); ``make parity`` compares every cell.

The file sorts after test_matrix.py: by the time it runs, the matrix's results are in,
and the one-shot cells run in the background, ``--jobs`` at once, in the order of the
tests below.
"""

from __future__ import annotations

import re

import pytest

from harness.cells import Cell, schedule_order
from harness.pytest_plugin import Background, Session, parity_cells, planned, raced
from harness.results import CellResult
from harness.runner import Runner

pytestmark = pytest.mark.docker

# What differs between any two runs of one program: OpenSSL's thread id, the clock.
VARYING = re.compile(r"\b[0-9A-F]{16}(?=:error:)|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "batch_cell" not in metafunc.fixturenames:
        return
    found, cells = planned(metafunc.config)
    batch = set(found.batches())
    batched = [c for c in cells if c.client in batch and not c.why_unsupported]
    chosen = schedule_order(parity_cells(metafunc.config, batched, found), found)
    metafunc.parametrize("batch_cell", chosen, ids=[c.id for c in chosen])


@pytest.fixture(scope="module")
def one_shot(harness: Session, request: pytest.FixtureRequest) -> Background:
    """Every cell of this module, each a fresh process of the one-shot client (through the
    container's agent, which test_agent_parity.py compares with ``docker exec``), no worker."""
    cells = [item.callspec.params["batch_cell"] for item in request.session.items if item.module is request.module]
    runner = Runner(harness.run, harness.registry, purpose="one-shot", agents=True, batch=False)
    return harness.background(runner, cells)


def comparable(result: CellResult) -> tuple[str, str, int | None, str]:
    return (
        result.observed,
        VARYING.sub("<varies>", result.native or ""),
        result.exit_code,
        VARYING.sub("<varies>", result.stdout) if result.exit_code == 0 else "",
    )


def test_batch_worker_and_one_shot_program_agree(harness: Session, one_shot: Background, batch_cell: Cell) -> None:
    if not harness.runner.batch:
        pytest.skip("the matrix runs with --one-shot: both sides are the one-shot program")
    in_matrix = harness.outcome(batch_cell)
    alone = one_shot.outcome(batch_cell)
    if raced(in_matrix, alone):
        return  # two outcomes of the stack's declared race (SPEC 14), both checked by raced()
    assert comparable(in_matrix) == comparable(alone), in_matrix.explain() + "\n---\n" + alone.explain()
