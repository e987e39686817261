"""``mtls-harness upgrade RESULTS...``: what changes when a stack moves to the next Debian.

A cell with a later generation's implementation (``nginx@13-server--curl-client--…``) is
paired with the same cell on the default generation (``nginx-server--curl-client--…``),
found in any of the results given (one cross-generation run, or a Debian 13 run and a
Debian 12 run). Every pair whose observed verdict differs is a change, grouped by the
upgraded stack and by behaviour (scenario, old verdict → new verdict).

A change is explained when the later cell passed against an expectation that its own
generation's manifest table sets (``[generation.13]``, with the rule and its source); a
change without such a rule is a failure, as a surprising cell is in the matrix. Cells
that end in another outcome of a race their stacks declare are not changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.results import CellRecord, ResultsDocument

_LATER = re.compile(r"@\d+(?=-(?:server|client)--)")


def counterpart(cell_id: str) -> str | None:
    """The same cell with every implementation on the default generation, or None when
    the cell has no later generation's implementation."""
    earlier = _LATER.sub("", cell_id)
    return earlier if earlier != cell_id else None


def upgraded(record: CellRecord) -> list[str]:
    """The later generation's implementations of a cell (one or both of its sides)."""
    return [name for name in (record["server"], record["client"]) if "@" in name]


@dataclass
class Change:
    cell: str
    was: str
    now: str
    was_native: str
    now_native: str
    stacks: tuple[str, ...]
    scenario: str
    tls: str
    #: The later manifest's rule when the new verdict is its expectation, else "".
    rule: str = ""
    source: str = ""

    @property
    def explained(self) -> bool:
        return bool(self.rule)


@dataclass
class Upgrade:
    compared: int = 0
    unchanged: int = 0
    raced: int = 0
    changes: list[Change] = field(default_factory=list)
    #: Later cells with no counterpart in the results given.
    unpaired: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Change]:
        return [c for c in self.changes if not c.explained]

    def by_stack(self) -> dict[str, dict[tuple[str, str, str], list[Change]]]:
        """Changes by upgraded implementation, then by (scenario, was, now)."""
        grouped: dict[str, dict[tuple[str, str, str], list[Change]]] = {}
        for change in self.changes:
            for stack in change.stacks:
                grouped.setdefault(stack, {}).setdefault((change.scenario, change.was, change.now), []).append(change)
        return dict(sorted(grouped.items()))


def _outcomes(record: CellRecord) -> set[str]:
    return {record["expected"], *record.get("racy", [])}


def compare(documents: Sequence[ResultsDocument]) -> Upgrade:
    """Pair every later-generation cell of ``documents`` with its default-generation cell."""
    cells: dict[str, CellRecord] = {}
    for document in documents:
        for record in document["cells"]:
            cells.setdefault(record["id"], record)
    result = Upgrade()
    for cell_id, record in sorted(cells.items()):
        earlier_id = counterpart(cell_id)
        if earlier_id is None or record["status"] == "unsupported":
            continue
        earlier = cells.get(earlier_id)
        if earlier is None or earlier["status"] == "unsupported":
            result.unpaired.append(cell_id)
            continue
        result.compared += 1
        was, now = earlier["observed"], record["observed"]
        if was == now:
            result.unchanged += 1
            continue
        if {was, now} <= _outcomes(earlier) & _outcomes(record):
            result.raced += 1
            continue
        # The later cell's expectation is its generation's own when it differs from the
        # earlier cell's (what the two share, inherited from the manifest, cannot differ)
        # and a later implementation sets it.
        by = record.get("expected_by") or ""
        own = "@" in by and record["expected"] != earlier["expected"]
        own_rule = own and record["status"] == "passed" and record["expected"] == now
        result.changes.append(
            Change(
                cell_id,
                was,
                now,
                earlier["native"],
                record["native"],
                tuple(upgraded(record)),
                record["scenario"],
                record["tls"],
                rule=(record.get("reason") or "") if own_rule else "",
                source=(record.get("source") or "") if own_rule else "",
            )
        )
    return result


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(upgrade: Upgrade, width: int = 80) -> str:
    lines = [
        _clip(
            f"{upgrade.compared} cell(s) paired with the default generation: {upgrade.unchanged} unchanged, "
            f"{len(upgrade.changes)} changed ({len(upgrade.unexplained)} without a rule), "
            f"{upgrade.raced} within a declared race",
            width,
        )
    ]
    for stack, behaviours in upgrade.by_stack().items():
        lines += ["", stack]
        for (scenario, was, now), changes in sorted(behaviours.items()):
            versions = ", ".join(sorted({c.tls for c in changes}))
            peers = sorted({p for c in changes for p in _peers(c, stack)})
            lines.append(_clip(f"  {scenario} (TLS {versions}): {was} -> {now}", width))
            lines.append(_clip(f"    with {len(peers)} peer(s): {', '.join(peers)}", width))
            native = changes[0].now_native or changes[0].was_native
            if native:
                lines.append(_clip(f"    now says: {native}", width))
            rule = changes[0].rule
            lines.append(
                _clip(f"    rule: {rule}" if rule else "    rule: none yet (a failure until one is found)", width)
            )
            if changes[0].source:
                lines.append(_clip(f"    source: {changes[0].source}", width))
    if upgrade.unpaired:
        lines += ["", f"{len(upgrade.unpaired)} later cell(s) without a default-generation cell in the results given"]
    return "\n".join(lines)


def _peers(change: Change, stack: str) -> list[str]:
    server, _, rest = change.cell.partition("-server--")
    client = rest.split("-client--", 1)[0]
    return [name for name in (server, client) if name != stack] or [stack]
