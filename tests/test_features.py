"""One table of server options and features (harness/features.py): the docs, the programs'
usage texts, the default argv, what a cell needs and what the admission check asks all
follow from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import features
from harness.features import FEATURE_RULES, FEATURES, SERVER_OPTIONS, admission_ask, server_needs
from harness.registry import CONTRACT_SERVER_ARGV, _template
from harness.scenarios import CATALOGUE, NO_CA_NAMES, ServerSide

IMAGES = Path(__file__).resolve().parent.parent / "images"


@pytest.mark.parametrize(("file", "name", "text"), features.generated_blocks())
def test_the_docs_tables_are_the_generated_ones(file: str, name: str, text: str) -> None:
    content = (IMAGES / file).read_text()
    assert features.block(name, text) in content, (
        f"images/{file}'s {name} table differs from harness/features.py: run `python -m harness.features --write`"
    )


def test_the_docs_quote_the_usage_line_placeholders_and_default_argv() -> None:
    contract = (IMAGES / "CONTRACT.md").read_text()
    assert f"`{features.server_usage().removeprefix('usage: ')}`" in contract
    manifest = " ".join((IMAGES / "MANIFEST.md").read_text().split())
    assert f"(server: `{' '.join(features.SERVER_VALUES)}`;" in manifest
    assert f"`{features.contract_template()}`" in manifest
    assert ", ".join(FEATURES) in manifest


def test_every_server_program_prints_the_tables_usage_line() -> None:
    """Written on one line (the shell parser, Go, Java, Rust) or split over string literals
    (C, Erlang): the words are the table's."""
    wanted = " ".join(features.server_usage().split())
    found = {}
    for path in sorted(IMAGES.rglob("*")):
        if not path.is_file() or path.suffix not in ("", ".sh", ".go", ".java", ".rs", ".c", ".erl"):
            continue
        text = path.read_text(errors="replace")
        start = text.find("usage: server-mtls")
        if start < 0:
            continue
        # the literal, and the literals after it up to the end of the statement
        chunk = text[start : text.find(";", start) if path.suffix in (".c", ".java", ".rs") else text.find("\n", start)]
        if path.suffix == ".erl":
            chunk = text[start : text.find(").", start)]
        words = " ".join("".join(re.findall(r'([^"]*)"(?:\s*\\?\s*"|\s*$)?', chunk)).split())
        found[str(path.relative_to(IMAGES))] = words.startswith(wanted)
    assert found and all(found.values()), {k: v for k, v in found.items() if not v}
    assert "base/contract.sh" in found and "go/cmd/server-mtls/main.go" in found


def test_the_default_argv_has_every_option_and_renders_as_the_contract_says() -> None:
    template = _template(CONTRACT_SERVER_ARGV, "contract", features.SERVER_VALUES)  # as a manifest is read
    values = {"cert": "c.pem", "key": "k.pem", "root_ca": None, "require": True, "tls_max": "1.3", "port": None}
    values |= {"crl": "crl.pem", "ca_names": NO_CA_NAMES, "auth_path": "/secure"}
    assert template.render(values) == (
        "server-mtls",
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--require",
        "--tls-max",
        "1.3",
        "--crl",
        "crl.pem",
        "--ca-names",
        "none",
        "--auth-path",
        "/secure",
    )


def test_what_a_cell_needs_follows_its_servers_options() -> None:
    assert server_needs(ServerSide(), "1.2") == ["tls1.2", "report"]
    assert server_needs(ServerSide(require=True, crl="c.pem"), "1.3") == ["tls1.3", "require", "crl"]
    assert server_needs(ServerSide(ca_names=NO_CA_NAMES), "1.3") == ["tls1.3", "report", "no-ca-names"]
    assert server_needs(ServerSide(ca_names="x.pem", auth_path="/s"), "1.2") == [
        "tls1.2",
        "report",
        "set-ca-names",
        "renegotiation",
    ]
    assert server_needs(ServerSide(auth_path="/s"), "1.3")[-1] == "post-handshake-auth"
    needed = {f for s in CATALOGUE for tls in s.tls for f in server_needs(s.server, tls)}
    assert needed == {rule.feature for rule in FEATURE_RULES}, "a feature no scenario needs, or one not declared"


@pytest.mark.parametrize("rule", FEATURE_RULES, ids=lambda r: r.feature)
def test_what_the_admission_check_asks_needs_the_feature_it_checks(rule: features.FeatureRule) -> None:
    asked = admission_ask(rule.feature)
    assert asked is not None
    side, tls = asked
    for version in [tls] if tls else ["1.2", "1.3"]:
        assert rule.feature in server_needs(side, version)


def test_every_option_a_rule_reads_is_an_option_and_every_feature_is_named_once() -> None:
    fields = {option.field for option in SERVER_OPTIONS}
    assert {rule.field for rule in FEATURE_RULES if rule.field} <= fields
    assert len(FEATURES) == len(set(FEATURES))
    assert admission_ask("keylog") is None
