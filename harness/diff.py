"""``mtls-harness diff OLD NEW``: the cells whose verdicts changed between two runs.

After a stack upgrade (or to prove five runs agree) the question is not "how many
passed" but "which cells now behave differently". A cell is compared by id on its
observed verdict; a cell only one run has is listed too (a narrower selection, a new
scenario). A cell that ends in another outcome of a race both runs declare for it (SPEC
§14) is listed apart and is not a change. The terminal text fits 80 columns (each change is two lines: the cell, then
was/now); ``--html`` writes the same as one static page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from harness.results import CellRecord, ResultsDocument


@dataclass
class Change:
    cell: str
    old: str | None  # None: the cell is not in OLD
    new: str | None
    old_native: str = ""
    new_native: str = ""
    # Both verdicts are outcomes of a race both runs declare for the cell (SPEC §14,
    # "Races as data"): the stack's own race, not a change of behaviour.
    raced: bool = False


@dataclass
class Comparison:
    old: str
    new: str
    compared: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> list[Change]:
        """Cells in both runs whose verdict changed, outside any race their stacks declare."""
        return [c for c in self.changes if c.old is not None and c.new is not None and not c.raced]

    @property
    def raced(self) -> list[Change]:
        """Cells that ended in another of the verdicts a declared race of their stack can end in."""
        return [c for c in self.changes if c.raced]

    @property
    def only_old(self) -> list[Change]:
        return [c for c in self.changes if c.new is None]

    @property
    def only_new(self) -> list[Change]:
        return [c for c in self.changes if c.old is None]


def compare(old: ResultsDocument, new: ResultsDocument, old_name: str = "OLD", new_name: str = "NEW") -> Comparison:
    before = {str(c["id"]): c for c in old["cells"]}
    after = {str(c["id"]): c for c in new["cells"]}
    result = Comparison(old_name, new_name, compared=len(before.keys() & after.keys()))
    for cell in sorted(before.keys() | after.keys()):
        a, b = before.get(cell), after.get(cell)
        was = str(a["observed"]) if a is not None else None
        now = str(b["observed"]) if b is not None else None
        if was != now:
            raced = a is not None and b is not None and {was, now} <= _outcomes(a) & _outcomes(b)
            result.changes.append(
                Change(
                    cell, was, now, a["native"] if a is not None else "", b["native"] if b is not None else "", raced
                )
            )
    return result


def _outcomes(cell: CellRecord) -> set[str]:
    """The verdicts a racy cell may end in (its expected one and its race's), or none."""
    racy = cell.get("racy") or []
    return {str(cell["expected"]), *map(str, racy)} if racy else set()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(comparison: Comparison, width: int = 80) -> str:
    lines = [
        f"compared {comparison.compared} cell(s): {len(comparison.changed)} verdict(s) changed, "
        f"{len(comparison.only_new)} only in NEW, {len(comparison.only_old)} only in OLD",
        f"OLD {comparison.old}",
        f"NEW {comparison.new}",
    ]
    if comparison.raced:
        lines.append(f"{len(comparison.raced)} other cell(s) ended in another outcome of a race their stack declares")
    for change in comparison.changed:
        lines.append("")
        lines.append(_clip(change.cell, width))
        lines.append(_clip(f"  was {change.old}  ({change.old_native})", width))
        lines.append(_clip(f"  now {change.new}  ({change.new_native})", width))
    if comparison.raced:
        lines.append("")
        lines.append("within a declared race (SPEC 14, not a change):")
        for change in comparison.raced:
            lines.append(_clip(f"  {change.cell}", width))
            lines.append(_clip(f"    was {change.old}, now {change.new}", width))
    for title, items in (("only in NEW", comparison.only_new), ("only in OLD", comparison.only_old)):
        if items:
            lines.append("")
            lines.append(f"{title}:")
            lines.extend(_clip(f"  {c.cell}", width) for c in items[:50])
            if len(items) > 50:
                lines.append(f"  … and {len(items) - 50} more")
    return "\n".join(lines)


def render_html(comparison: Comparison) -> str:
    def esc(value: object) -> str:
        return html.escape(str(value if value is not None else "—"))

    rows = "".join(
        f"<tr><td><code>{esc(c.cell)}</code>{'<br><small>within a declared race</small>' if c.raced else ''}</td>"
        f"<td>{esc(c.old)}<br><small>{esc(c.old_native)}</small></td>"
        f"<td>{esc(c.new)}<br><small>{esc(c.new_native)}</small></td></tr>"
        for c in sorted(comparison.changes, key=lambda c: c.raced)
    )
    return (
        "<!doctype html><meta charset=utf-8><title>mtls-harness diff</title>"
        "<style>body{font:14px system-ui;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px;"
        "vertical-align:top}table{border-collapse:collapse}small{color:#555}</style>"
        f"<h1>Verdicts that changed</h1><p>OLD <code>{esc(comparison.old)}</code><br>NEW "
        f"<code>{esc(comparison.new)}</code></p><p>{comparison.compared} cell(s) compared: "
        f"{len(comparison.changed)} changed, {len(comparison.only_new)} only in NEW, "
        f"{len(comparison.only_old)} only in OLD, {len(comparison.raced)} within a race their stack declares.</p>"
        f"<table><tr><th>cell</th><th>OLD</th><th>NEW</th></tr>{rows}</table>"
    )
