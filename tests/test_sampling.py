"""The parity tests' sample (harness/sampling.py): half the cells, every pair and scenario kept."""

from __future__ import annotations

from collections import Counter

import pytest

from harness import registry, sampling
from harness.cells import plan
from harness.scenarios import CATALOGUE

REGISTRY = registry.default()
CELLS = plan(REGISTRY)


def triples(cells):  # type: ignore[no-untyped-def]
    return {(c.server, c.client, c.scenario.id) for c in cells}


def test_the_sample_keeps_one_version_of_every_server_client_scenario() -> None:
    kept = sampling.sample(CELLS, REGISTRY)
    assert triples(kept) == triples(CELLS)
    assert len(kept) == len(triples(CELLS))
    assert Counter((c.server, c.client, c.scenario.id) for c in kept).most_common(1)[0][1] == 1


def test_the_sample_alternates_versions_so_every_stack_runs_both() -> None:
    kept = sampling.sample(CELLS, REGISTRY)
    for name in REGISTRY.servers:
        assert {c.tls for c in kept if c.server == name} == {"1.2", "1.3"}, name
    for name in REGISTRY.clients:
        assert {c.tls for c in kept if c.client == name} == {"1.2", "1.3"}, name
    both = [s for s in CATALOGUE if len(s.tls) == 2]
    one_pair = [c for c in kept if c.server == "python" and c.client == "curl"]
    versions = [next(c.tls for c in one_pair if c.scenario.id == s.id) for s in both]
    assert all(a != b for a, b in zip(versions, versions[1:], strict=False)), versions


def test_a_triple_with_one_version_keeps_it() -> None:
    scenario = CATALOGUE[0].id
    only_13 = [c for c in CELLS if not (c.scenario.id == scenario and c.tls == "1.2")]
    kept = sampling.sample(only_13, REGISTRY)
    assert {c.id for c in kept if c.scenario.id == scenario} == {c.id for c in only_13 if c.scenario.id == scenario}


def test_all_keeps_every_cell_and_the_order() -> None:
    assert sampling.choose(CELLS, REGISTRY, "all") == CELLS
    kept = [c.id for c in sampling.choose(CELLS, REGISTRY, "sample")]
    chosen = set(kept)
    assert kept == [c.id for c in CELLS if c.id in chosen]


def test_an_unknown_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown parity selection 'some'"):
        sampling.choose(CELLS, REGISTRY, "some")
