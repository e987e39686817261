"""Which cells a parity test compares: all of them, or a documented representative half.

The parity tests (scenarios/test_agent_parity.py, scenarios/test_one_shot_parity.py) run
cells a second way, beside the matrix, and compare the verdicts. Run in full they double
the cost of the cells they cover; ``make test`` (CI) compares a sample and ``make parity``
compares every cell (pytest's ``--parity all``).

The sample keeps every server x client x scenario and drops one of its two TLS versions,
alternating: the kept version is the ``(server + client + scenario) % 2``-th, counted
in the registry's and the catalogue's order, of the versions the triple has. So every
pair of stacks meets every scenario, every client and every server runs both versions,
and two neighbouring scenarios of one pair use different versions. What the two paths
of a parity test could disagree on is how one process runs (argv, environment, TLS state
carried over), not which version a cell negotiates.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.cells import Cell
from harness.registry import Registry
from harness.scenarios import CATALOGUE

CHOICES = ("sample", "all")
DEFAULT = "sample"


def sample(cells: Sequence[Cell], registry: Registry) -> list[Cell]:
    """One TLS version of each server x client x scenario (see the module's docstring), in
    the order given."""
    servers = {name: n for n, name in enumerate(registry.check("server", (), registry.generations))}
    clients = {name: n for n, name in enumerate(registry.check("client", (), registry.generations))}
    scenarios = {scenario.id: n for n, scenario in enumerate(CATALOGUE)}
    versions: dict[tuple[str, str, str], list[str]] = {}
    for cell in cells:
        versions.setdefault((cell.server, cell.client, cell.scenario.id), []).append(cell.tls)
    kept = []
    for cell in cells:
        key = (cell.server, cell.client, cell.scenario.id)
        offered = sorted(versions[key])
        turn = servers.get(cell.server, 0) + clients.get(cell.client, 0) + scenarios.get(cell.scenario.id, 0)
        if cell.tls == offered[turn % len(offered)]:
            kept.append(cell)
    return kept


def choose(cells: Sequence[Cell], registry: Registry, how: str) -> list[Cell]:
    """``cells`` themselves (``all``) or their ``sample``."""
    if how == "all":
        return list(cells)
    if how == "sample":
        return sample(cells, registry)
    raise ValueError(f"unknown parity selection {how!r}: choose from {', '.join(CHOICES)}")
