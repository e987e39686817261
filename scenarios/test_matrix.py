"""The matrix: every selected server x client x scenario x TLS version is one test.

Cells come from the catalogue in harness/scenarios.py; filter with ``--server``,
``--client``, ``--scenario``, ``--tls`` or ``-k``.
"""

from __future__ import annotations

import pytest

from harness.cells import Cell

pytestmark = pytest.mark.docker


# A matrix test waits for its cell, which the background matrix runs in this order; the
# cell has its own limits (harness/runner.py CELL_TIMEOUT_S, pods READY_TIMEOUT_S), and the
# wait ends if the matrix stops. The per-test limit of pyproject.toml (300 s) would count
# the queue ahead of the cell, so it is raised here to the length of a whole matrix.
@pytest.mark.timeout(3600)
def test_cell(cell: Cell, run_cell) -> None:  # type: ignore[no-untyped-def]
    result = run_cell(cell)
    if result.status == "unsupported":  # the server said at start it cannot (exit 127)
        pytest.skip(result.reason)
    assert result.passed, result.explain()
