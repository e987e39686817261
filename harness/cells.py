"""The cell model and the plan (SPEC §10): which cells a selection holds, what each must
show, and the order in which the runner's workers reach them.

A cell is one server implementation × one client implementation × one scenario × one
TLS version. Cells whose server configuration is identical share one server process
(the configuration is the whole of what a server knows, so nothing leaks between
them); every distinct configuration gets its own process on its own port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.registry import Expected, Registry
from harness.scenarios import TLS_VERSIONS, Scenario, ServerSide, select

#: (server implementation, its configuration, TLS version, the cell id for fresh processes or "").
ServerKey = tuple[str, ServerSide, str, str]


@dataclass(frozen=True)
class Cell:
    """One server x client x scenario x TLS version, with what it must show.

    ``expected`` comes from the catalogue and the two manifests (harness.registry);
    ``why_unsupported`` says why the cell cannot run, decided before it runs.
    """

    server: str
    client: str
    scenario: Scenario
    tls: str
    expected: Expected
    why_unsupported: str | None = None

    @property
    def id(self) -> str:
        return f"{self.server}-server--{self.client}-client--{self.scenario.id}--tls{self.tls}"


def check_tls(versions: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(versions))
    for version in chosen:
        if version not in TLS_VERSIONS:
            raise UsageError(f"unknown TLS version {version!r}: choose from {', '.join(TLS_VERSIONS)}")
    return chosen or list(TLS_VERSIONS)


def plan(
    registry: Registry,
    servers: Iterable[str] = (),
    clients: Iterable[str] = (),
    scenario_ids: Iterable[str] = (),
    tls: Iterable[str] = (),
    generations: Iterable[str] = (),
) -> list[Cell]:
    """Every cell of the selection, in a stable order; empty filters mean "all" (of the
    ``generations``' implementations: the default generation's when none is named)."""
    chosen_servers = registry.check("server", servers, generations)
    chosen_clients = registry.check("client", clients, generations)
    chosen_tls = check_tls(tls)
    cells = []
    for scenario in select(list(scenario_ids)):
        for version in chosen_tls:
            if version not in scenario.tls:
                continue
            for server in chosen_servers:
                for client in chosen_clients:
                    why = registry.why_unsupported(server, client, scenario, version)
                    expected = (
                        Expected("unsupported", rule=why)
                        if why
                        else registry.expectation(server, client, scenario, version)
                    )
                    cells.append(Cell(server, client, scenario, version, expected, why))
    return cells


def schedule(cells: Sequence[Cell], key: Callable[[Cell], Any]) -> list[list[Cell]]:
    """Cells grouped by server process, largest group first; each group runs in order."""
    groups: dict[Any, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(key(cell), []).append(cell)
    return sorted(groups.values(), key=len, reverse=True)


def server_key(registry: Registry, cell: Cell) -> ServerKey:
    """Cells with the same key share one server process (and so run one at a time).

    A server whose manifest says it keeps state across connections that can change a
    verdict (``fresh_process``) gets a process of its own for every cell, and so does a
    scenario of several requests (``Scenario.fresh_server``).
    """
    fresh = registry.server(cell.server).fresh_process or cell.scenario.fresh_server
    return (cell.server, cell.scenario.server, cell.tls, cell.id if fresh else "")


def schedule_order(cells: Sequence[Cell], registry: Registry) -> list[Cell]:
    """The order in which ``jobs`` workers reach the cells, near enough: group by group,
    with the groups the runner makes (``server_key``: a fresh-process server's cells are
    groups of one, and come last)."""
    return [cell for group in schedule(cells, lambda c: server_key(registry, c)) for cell in group]
