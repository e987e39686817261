"""Debian generations as a build input (images/MANIFEST.md, "Generations"): a manifest's
``[generation.13]`` table adds ``<name>@13``, built on trixie's base, run only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import images, registry
from harness.cells import plan
from harness.errors import UsageError
from harness.rules import ManifestError
from tests.stacks import TOY_SERVER, write_impl
from tests.test_images import DEB822

LATER = """
[generation.13]
stack = "Toy TLS 2"

[generation.13.server]
unsupported = { crl = "Toy TLS 2 has no CRLs either", "tls1.2" = "Toy TLS 2 dropped TLS 1.2" }

[[generation.13.expect]]
scenario = ["require-expired-client-cert"]
role = "server"
verdict = "server-rejected:certificate_expired"
rule = "Toy TLS 2 names the expiry in its alert"
source = "https://example.invalid/toy/2/src/verify.c#L50"
"""


@pytest.fixture
def two(tmp_path: Path) -> registry.Registry:
    folder = write_impl(tmp_path / "toy", "toy", TOY_SERVER + LATER)
    (folder / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    return registry.load(folder=tmp_path)


def test_a_generation_table_adds_a_named_implementation_built_on_its_base(two: registry.Registry) -> None:
    old, new = two.get("toy"), two.get("toy@13")
    assert (old.generation, new.generation) == ("12", "13")
    assert (old.image, new.image) == ("example/toy:1", "example/toy-13:1")
    assert dict(new.build_args) == {"GENERATION": "13"} and old.build_args == ()
    assert new.build_context == old.build_context  # one folder for both: no copy
    assert new.stack == "Toy TLS 2" and old.stack != new.stack
    # What differs is data over the manifest: the table wins, the rest is the manifest's.
    assert new.server is not None and old.server is not None
    assert set(new.server.lacks) == {"crl", "tls1.2"} and "tls1.2" not in old.server.lacks

    def rules(impl: registry.Impl) -> list[object]:
        assert impl.server is not None
        return [(r.verdict, r.conditions) for r in impl.server.reasons.rules]

    assert rules(new) == rules(old) and len(new.expectations) == len(old.expectations) + 1


def test_a_generations_own_expectation_decides_its_cells_only(two: registry.Registry) -> None:
    from harness.scenarios import BY_ID

    scenario = BY_ID["require-expired-client-cert"]
    old = two.expectation("toy", "toy", scenario, "1.3")
    new = two.expectation("toy@13", "toy", scenario, "1.3")
    assert (old.verdict, new.verdict) == ("server-rejected:bad_certificate", "server-rejected:certificate_expired")
    assert (new.by, new.rule) == ("toy@13", "Toy TLS 2 names the expiry in its alert")


def test_the_default_plan_is_the_default_generation_and_others_are_asked_for(two: registry.Registry) -> None:
    assert two.servers == ("toy",) and two.generations == ("12", "13")
    default = plan(two, scenario_ids=["trusted-client"])
    assert {(c.server, c.client) for c in default} == {("toy", "toy")}
    later = plan(two, scenario_ids=["trusted-client"], generations=["13"])
    assert {(c.server, c.client) for c in later} == {("toy@13", "toy@13")}
    both = plan(two, scenario_ids=["trusted-client"], tls=["1.3"], generations=["12", "13"])
    assert {(c.server, c.client) for c in both} == {(s, c) for s in ("toy", "toy@13") for c in ("toy", "toy@13")}
    cross = plan(two, servers=["toy@13"], clients=["toy"], scenario_ids=["trusted-client"])
    assert [c.id for c in cross] == [
        "toy@13-server--toy-client--trusted-client--tls1.2",
        "toy@13-server--toy-client--trusted-client--tls1.3",
    ]
    assert cross[0].why_unsupported == "toy@13 server: Toy TLS 2 dropped TLS 1.2"
    # "Debian 13 servers against Debian 12 clients" in one selection: @N is a generation's all.
    by_generation = plan(two, servers=["@13"], clients=["@12"], scenario_ids=["trusted-client"])
    assert [c.id for c in by_generation] == [c.id for c in cross]
    with pytest.raises(UsageError, match="unknown Debian generation 11"):
        plan(two, servers=["@11"])
    with pytest.raises(UsageError, match="unknown Debian generation 14"):
        plan(two, generations=["14"])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[generation.14]\nstack = 'x'\n", "not a later Debian generation"),
        ("[generation.12]\nstack = 'x'\n", "not a later Debian generation"),
        ("[generation.13]\nname = 'x'\n", "name, generation and include are the manifest's own"),
        ("[generation.13]\nnope = 1\n", r"unknown key\(s\) nope"),
        ("[generation]\n13 = 'x'\n", "generation is a table of tables"),
        ("[generation.13]\nbuild = false\n", "a later generation is built by the harness"),
    ],
)
def test_a_bad_generation_table_is_one_line(tmp_path: Path, table: str, message: str) -> None:
    folder = write_impl(tmp_path / "toy", "toy", TOY_SERVER + "\n" + table)
    (folder / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    with pytest.raises(ManifestError, match=message):
        registry.load(folder=tmp_path)


def test_a_later_generations_sources_are_the_hosts_bookworm_mirrors_renamed(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    found = images.host_debian_sources(tmp_path, suite="trixie")
    assert [(s.uri, s.suites) for s in found] == [
        ("http://mirror.example/debian", ("trixie", "trixie-updates")),
        ("http://mirror.example/debian-security", ("trixie-security",)),
    ]
    assert images.generation_suffix("12") == "" and images.generation_suffix("13") == "-13"


def test_shipped_later_generations_share_their_folder_and_name_their_stack() -> None:
    found = registry.load()
    later = [impl for impl in found.impls if impl.generation != registry.DEFAULT_GENERATION]
    assert later, "no stack is built for a later generation yet"
    for impl in later:
        base = found.get(impl.name.split("@")[0])
        assert impl.build_context == base.build_context and impl.folder == base.folder
        assert impl.stack != base.stack, f"{impl.name}: say which version Debian {impl.generation} ships"
