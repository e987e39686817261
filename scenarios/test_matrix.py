"""The matrix: every selected server x client x scenario x TLS version is one test.

Cells come from the catalogue in harness/scenarios.py; filter with ``--server``,
``--client``, ``--scenario``, ``--tls`` or ``-k``.
"""

from __future__ import annotations

import pytest

from harness.matrix import Cell

pytestmark = pytest.mark.docker


def test_cell(cell: Cell, run_cell) -> None:  # type: ignore[no-untyped-def]
    result = run_cell(cell)
    assert result.passed, result.explain()
