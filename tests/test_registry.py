"""A stack is one folder: manifests, templates, error maps, expectations, discovery."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.cells import plan
from harness.errors import UsageError
from harness.rules import ManifestError
from harness.scenarios import BY_ID, CATALOGUE, TUTORIAL_IDS
from harness.tutorial import TRANSCRIPT
from harness.verdicts import Evidence, decide
from tests.stacks import TOY_SERVER, toy_registry, write_impl

HARNESS = Path(__file__).resolve().parent.parent / "harness"


def test_a_new_folder_is_a_new_stack_with_no_code_change(tmp_path: Path) -> None:
    found = toy_registry(tmp_path)
    assert found.servers == ("toy",) and found.clients == ("other", "toy")
    cells = {c.id: c for c in plan(found)}
    assert len(cells) == len(CATALOGUE) * 2 * 1 * 2
    # Its expectation, with its rule, replaces the catalogue's default where it says so ...
    expired = cells["toy-server--other-client--require-expired-client-cert--tls1.3"].expected
    assert (expired.verdict, expired.source) == (
        "server-rejected:bad_certificate",
        "https://example.invalid/toy/src/verify.c#L42",
    )
    # ... and nowhere else; it pins no OpenSSL names, being no OpenSSL server.
    untrusted = cells["toy-server--other-client--require-untrusted-client-ca--tls1.3"].expected
    assert (untrusted.verdict, untrusted.native, untrusted.rule) == ("server-rejected:unknown_ca", None, "")
    assert cells["toy-server--toy-client--no-client-cert--tls1.2"].expected.native is None
    # What it cannot do is unsupported before anything runs, with its reason.
    crl = cells["toy-server--toy-client--revoked-client-cert--tls1.2"]
    assert crl.why_unsupported and "no revocation checking" in crl.why_unsupported
    assert crl.expected.verdict == "unsupported" and crl.expected.rule == crl.why_unsupported
    # Selection picks it by name, and rejects what it is not.
    assert {c.client for c in plan(found, clients=["other"])} == {"other"}
    with pytest.raises(UsageError, match="unknown server implementation 'other'"):
        plan(found, servers=["other"])


def test_its_error_map_classes_its_own_words(tmp_path: Path) -> None:
    found = toy_registry(tmp_path)
    server, client = found.server("toy"), found.client("toy")
    body = '{"mTLSValid": false, "reason": "too old: notAfter 2020"}'
    assert decide(Evidence(0, body, ""), client, server).verdict == "reported:expired"
    alert = "   Error Code: ALERT\nError Message: peer said bad certificate\n"
    decision = decide(Evidence(1, "", alert), client, server)
    assert (decision.verdict, decision.native) == (
        "server-rejected:bad_certificate",
        "ALERT: peer said bad certificate",
    )
    assert "toy/impl.toml [client].errors[0]" in decision.rule
    # A shared rule set, included by name, serves the other client.
    reset = "   Error Code: ECONNRESET\nError Message: socket hang up\n"
    assert decide(Evidence(1, "", reset), found.client("other"), server).verdict == "server-rejected:closed"
    assert decide(Evidence(1, "", "   Error Code: WHAT\n"), client, server).verdict == "client-error:unmapped"


def test_a_web_servers_own_error_page_is_classed_by_its_responses_table(tmp_path: Path) -> None:
    manifest = TOY_SERVER.replace(
        "[client]",
        "[[server.responses]]\nbody = '<title>400 (?P<why>[^<]*)</title>'\n"
        'verdict = "server-rejected:http-400"\n[client]',
    )
    write_impl(tmp_path, "toy", manifest)
    found = registry.load(folder=tmp_path)
    page = "<html>\n<head><title>400 The SSL certificate error</title></head>\n</html>\n"
    decision = decide(Evidence(0, page, ""), found.client("toy"), found.server("toy"))
    assert (decision.verdict, decision.native) == ("server-rejected:http-400", "400 The SSL certificate error")
    assert decide(Evidence(0, "<html>other</html>", ""), found.client("toy"), found.server("toy")).verdict == (
        "harness-error:unparsable-body"
    )
    status = "   Error Code: ERR_BAD_REQUEST\nError Message: Request failed with status code 400\n"
    node = registry.default().client("node")
    assert decide(Evidence(1, "", status), node, found.server("toy")).verdict == "server-rejected:http-400"


def test_impls_lists_it(tmp_path: Path) -> None:
    write_impl(tmp_path, "toy", TOY_SERVER)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "impls", "--no-versions", "--impl", str(tmp_path / "toy")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "toy  [server, client]  Toy TLS 1.0" in result.stdout
    assert "no server crl: Toy TLS has no revocation checking" in result.stdout
    assert "node  [server, client]" in result.stdout


def test_nothing_in_the_harness_names_an_implementation() -> None:
    names = "|".join(re.escape(i.name) for i in registry.default().impls)
    pattern = re.compile(rf"""["']({names})["']""")
    offenders = []
    for path in HARNESS.rglob("*.py"):
        if path.name in ("tutorial.py",):  # the tutorial's transcript is data (its commands name curl and node)
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_templates_reproduce_the_tutorials_command_lines() -> None:
    found = registry.default()
    relative = "../{}".format
    for run in TRANSCRIPT:
        side = BY_ID[run.steps[0].id].server
        argv, _ = found.server_command("node", side, None, None, relative, tutorial=True)
        assert argv == run.argv
        for step in run.steps:
            client_side = BY_ID[step.id].client
            argv, _ = found.client_command(step.client, client_side, "https://localhost:9443", relative, tutorial=True)
            assert argv == step.argv
    assert set(TUTORIAL_IDS) == {step.id for run in TRANSCRIPT for step in run.steps}


def test_contract_templates_give_the_contract_flags() -> None:
    found = registry.default()
    side = BY_ID["require-revoked-client-cert"].server
    argv, _ = found.server_command("python", side, "1.2", 10001, "/certs/{}".format)
    assert argv == (
        "server-mtls", "--cert", "/certs/tls-certs/localhost-server-cert.pem", "--key",
        "/certs/tls-certs/localhost-server-key.pem", "--root-ca", "/certs/alternate-tls-certs/root-ca-cert.pem",
        "--require", "--tls-max", "1.2", "--crl", "/certs/variants/alternate-crls.pem", "--port", "10001",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ('name = "x"\nimage = "x"\nroles = ["server"]\n', "stack must be a non-empty string"),
        (TOY_SERVER.replace('roles = ["server", "client"]', 'roles = ["proxy"]'), "roles must be a list"),
        (TOY_SERVER.replace('verdict = "reported:expired"', 'verdict = "reported:EXPIRED"'), "not a verdict of SPEC"),
        (TOY_SERVER.replace("reason = '^too old'", "reason = '(unclosed'"), "not a valid regular expression"),
        (TOY_SERVER.replace('scenario = ["require-expired', 'scenario = ["no-such'), "matches no scenario"),
        (TOY_SERVER.replace('rule = "Toy TLS answers', 'rul = "Toy'), "unknown key(s) rul"),
        (TOY_SERVER.replace('{ crl = "Toy', '{ ocsp = "Toy'), "unknown feature 'ocsp'"),
        (
            TOY_SERVER.replace(
                "[[client.errors]]\ncode = '^ALERT$'",
                "[[client.errors]]\ninclude = 'openssl.nope'\n[[client.errors]]\ncode = '^ALERT$'",
            ),
            "no shared rule table",
        ),
        (TOY_SERVER + '\n[client.output]\ncode = "no group"\n', "needs one group"),
        (TOY_SERVER.replace('image = "example/toy:1"\n', ""), "image must name an existing image"),
        ("name = [", "impl.toml"),
        (TOY_SERVER.replace("[server]\n", '[server]\ncapabilities = ["SYS_ADMIN"]\n', 1), "may hold only"),
        (
            TOY_SERVER.replace('rule = "Toy TLS answers', 'wire = "silence"\nrule = "Toy TLS answers'),
            "wire must be one of",
        ),
    ],
)
def test_a_broken_manifest_is_one_line_naming_the_file_and_the_problem(
    tmp_path: Path, manifest: str, message: str
) -> None:
    write_impl(tmp_path, "toy", manifest)
    with pytest.raises(ManifestError) as caught:
        registry.load(folder=tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


#: A family: one shared folder (Dockerfile, programs, a fragment) and a variant per subfolder.
FAMILY_FRAGMENT = """
roles = ["server"]
[version]
argv = ["server-mtls", "--version"]
[server]
ready = "family ready"
unsupported = { renegotiation = "the family never renegotiates (fam/README)" }
[[server.reasons]]
reason = '.'
verdict = "reported:other"
"""


def _family(root: Path, variant_extra: str = "") -> Path:
    family = root / "fam"
    family.mkdir(parents=True)
    (family / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nARG MODULE\n")
    (family / "fam.impl.toml").write_text(FAMILY_FRAGMENT)
    for module in ("one", "two"):
        write_impl(
            family,
            module,
            f'name = "fam-{module}"\nstack = "Fam + {module}"\nroles = ["server"]\ninclude = "../fam.impl.toml"\n'
            f'[build]\ncontext = ".."\nargs = {{ MODULE = "{module}" }}\n'
            '[server]\nunsupported = { crl = "no CRLs here (fam/README)" }\n'
            "[[server.reasons]]\nreason = '^NONE$'\nverdict = \"reported:no-cert\"\n" + variant_extra,
        )
    return family


def test_a_family_is_one_folder_with_a_variant_per_subfolder(tmp_path: Path) -> None:
    family = _family(tmp_path)
    found = registry.load(folder=tmp_path)
    assert found.servers == ("fam-one", "fam-two")
    one = found.get("fam-one")
    assert (one.folder, one.build_context, one.build_args) == (family / "one", family, (("MODULE", "one"),))
    assert one.build and one.image == "mtls-harness/fam-one"
    # The fragment's values are there, under the variant's own: tables merge key by key ...
    assert one.server is not None and one.server.ready == "family ready"
    assert set(one.server.lacks) == {"renegotiation", "crl"}
    assert one.version_argv == ("server-mtls", "--version")
    # ... and its own [[...]] entries come first (first match wins).
    assert [r.verdict for r in one.server.reasons.rules] == ["reported:no-cert", "reported:other"]


def test_a_variants_own_value_wins_over_its_fragments(tmp_path: Path) -> None:
    family = _family(tmp_path)
    manifest = family / "two" / "impl.toml"
    manifest.write_text(manifest.read_text().replace("[server]\n", '[server]\nready = "two ready"\n'))
    found = registry.load(folder=tmp_path)
    assert found.get("fam-two").server.ready == "two ready"  # type: ignore[union-attr]
    assert found.get("fam-one").server.ready == "family ready"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('include = "../fam.impl.toml"', 'include = "../gone.impl.toml"'), "include '../gone.impl.toml'"),
        (('include = "../fam.impl.toml"', "include = 3"), "include is a file"),
        (('context = ".."', 'context = "."'), "no Dockerfile in the build context"),
        (('args = { MODULE = "one" }', "args = { MODULE = 1 }"), "args is a table"),
        (('args = { MODULE = "one" }', 'args = { BASE = "x" }'), "BASE and GENERATION are the harness's own"),
        (('context = ".."', 'context = ".."\ndockerfile = "D"'), "unknown key(s) dockerfile"),
    ],
)
def test_a_broken_family_manifest_is_one_line(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    family = _family(tmp_path)
    manifest = family / "one" / "impl.toml"
    manifest.write_text(manifest.read_text().replace(*change))
    with pytest.raises(ManifestError) as caught:
        registry.load(folder=tmp_path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_fragment_names_no_stack(tmp_path: Path) -> None:
    family = _family(tmp_path)
    (family / "fam.impl.toml").write_text('name = "fam"\n' + FAMILY_FRAGMENT)
    with pytest.raises(ManifestError, match="an included fragment has no name"):
        registry.load(folder=tmp_path)


def test_two_folders_with_one_name_are_refused(tmp_path: Path) -> None:
    write_impl(tmp_path / "a", "toy", TOY_SERVER)
    with pytest.raises(ManifestError, match="two implementations are named 'toy'"):
        registry.load([tmp_path / "a" / "toy"], folder=tmp_path / "a")
    with pytest.raises(UsageError, match="no impl.toml there"):
        registry.load([tmp_path / "missing"])


def test_a_server_may_ask_only_for_the_capabilities_that_drop_root(tmp_path: Path) -> None:
    write_impl(tmp_path, "toy", TOY_SERVER.replace("[server]\n", '[server]\ncapabilities = ["SETUID", "SETGID"]\n', 1))
    found = registry.load(folder=tmp_path)
    assert found.capabilities() == {"toy": ("SETUID", "SETGID")}
    assert "apache" in registry.default().capabilities()
    assert {name.split("@")[0] for name in registry.default().capabilities()} == {"apache"}  # no other stack needs any


def test_a_clients_own_error_comes_before_any_servers_expectation(tmp_path: Path) -> None:
    """A client that refuses its own certificate never reaches the server: its
    ``client-error`` beats every server's expectation, even one that names the client."""
    write_impl(tmp_path, "toy", TOY_SERVER)
    client_expect = (
        '[[expect]]\nscenario = "require-expired-client-cert"\nrole = "client"\n'
        'verdict = "client-error:weak"\nrule = "refuses its own certificate"\nsource = "https://example.invalid/o"\n'
    )
    write_impl(
        tmp_path,
        "other",
        'name = "other"\nstack = "Other 2"\nroles = ["client"]\nimage = "example/other"\n'
        '[version]\nargv = ["other", "-V"]\n[[client.errors]]\ninclude = "openssl.errors"\n' + client_expect,
    )
    found = registry.load(folder=tmp_path)
    scenario = BY_ID["require-expired-client-cert"]
    assert found.expectation("toy", "other", scenario, "1.3").verdict == "client-error:weak"
    assert found.expectation("toy", "toy", scenario, "1.3").verdict == "server-rejected:bad_certificate"
    # Which manifest and which of its roles decided: toy is both server and client here.
    mine = found.expectation("toy", "other", scenario, "1.3")
    assert (mine.by, mine.by_role) == ("other", "client")
    toys = found.expectation("toy", "toy", scenario, "1.3")
    assert (toys.by, toys.by_role) == ("toy", "server")
    # Even a server's expectation that names this client: the client never got that far.
    named = TOY_SERVER + (
        '[[expect]]\nscenario = "*"\nrole = "server"\npeer = "other"\n'
        'verdict = "server-rejected:closed"\nrule = "r"\nsource = "https://example.invalid/t"\n'
    )
    (tmp_path / "toy" / "impl.toml").write_text(named)
    found = registry.load(folder=tmp_path)
    assert found.expectation("toy", "other", scenario, "1.3").verdict == "client-error:weak"
    assert found.expectation("toy", "other", BY_ID["trusted-client"], "1.3").verdict == "server-rejected:closed"
    # An expectation of the client that is no error of its own stays behind the server's.
    (tmp_path / "other" / "impl.toml").write_text(
        (tmp_path / "other" / "impl.toml").read_text().replace("client-error:weak", "ok")
    )
    (tmp_path / "toy" / "impl.toml").write_text(TOY_SERVER)
    found = registry.load(folder=tmp_path)
    assert found.expectation("toy", "other", scenario, "1.3").verdict == "server-rejected:bad_certificate"


def test_a_scenario_like_another_takes_its_expectations_unless_named(tmp_path: Path) -> None:
    leaf_only = (
        '[[expect]]\nscenario = "leaf-without-intermediate"\nrole = "server"\n'
        'verdict = "reported:no-cert"\nrule = "r"\nsource = "https://example.invalid/a"\n'
    )
    write_impl(tmp_path, "toy", TOY_SERVER + leaf_only)
    found = registry.load(folder=tmp_path)
    cache = BY_ID["intermediate-cache"]
    assert cache.like == "leaf-without-intermediate"
    assert found.expectation("toy", "toy", cache, "1.2").verdict == "reported:no-cert"
    named = leaf_only.replace("leaf-without-intermediate", "intermediate-cache").replace("no-cert", "untrusted")
    (tmp_path / "toy" / "impl.toml").write_text(TOY_SERVER + leaf_only + named)
    found = registry.load(folder=tmp_path)
    assert found.expectation("toy", "toy", cache, "1.2").verdict == "reported:untrusted"
    assert found.expectation("toy", "toy", BY_ID["leaf-without-intermediate"], "1.2").verdict == "reported:no-cert"


def test_a_race_of_the_stacks_own_is_data_the_cell_passes_on_either_outcome(tmp_path: Path) -> None:
    """SPEC §14: an [[expect]] may list (``also``) the other verdicts a race inside the stack
    can end in; the cell passes on any of them, and says it is racy."""
    from harness.results import CellResult

    racy = (
        '[[expect]]\nscenario = "require-no-client-cert"\nrole = "server"\n'
        'verdict = "server-rejected:closed"\nalso = ["server-rejected:decode_error"]\n'
        'rule = "its handshake is entered twice"\nsource = "https://example.invalid/toy/src/hs.c#L7"\n'
    )
    write_impl(tmp_path, "toy", TOY_SERVER + racy)
    found = registry.load(folder=tmp_path)
    cell = next(c for c in plan(found) if c.id == "toy-server--toy-client--require-no-client-cert--tls1.2")
    assert cell.expected.verdicts == ("server-rejected:closed", "server-rejected:decode_error")
    for observed in cell.expected.verdicts:
        result = CellResult(cell, observed)
        assert result.passed and result.racy
        assert result.record()["racy"] == ["server-rejected:decode_error"]
    assert not CellResult(cell, "server-rejected:certificate_required").passed
    assert "or server-rejected:decode_error (a race of the stack's)" in CellResult(cell, "ok").explain()
    # A cell with no race declared is not racy, and its record says nothing of it.
    plain = next(c for c in plan(found) if c.id == "toy-server--toy-client--trusted-client--tls1.2")
    assert not CellResult(plain, "ok").racy and "racy" not in CellResult(plain, "ok").record()


@pytest.mark.parametrize(
    ("also", "problem"),
    [
        ('"server-rejected:decode_error"', "a list"),
        ('["server-rejected:closed"]', "cannot be a race's other outcome"),  # the expected one itself
        ('["timeout"]', "cannot be a race's other outcome"),  # a limit of ours is no race of the stack's
        ('["no-such-verdict"]', "not a verdict"),
        ('["ok", "ok"]', "listed twice"),
    ],
)
def test_a_declared_race_names_real_other_verdicts(tmp_path: Path, also: str, problem: str) -> None:
    racy = (
        '[[expect]]\nscenario = "require-no-client-cert"\nrole = "server"\n'
        f'verdict = "server-rejected:closed"\nalso = {also}\n'
        'rule = "r"\nsource = "https://example.invalid/toy/src/hs.c#L7"\n'
    )
    write_impl(tmp_path, "toy", TOY_SERVER + racy)
    with pytest.raises(ManifestError, match=re.escape(problem)):
        registry.load(folder=tmp_path)


RACE = (
    '[[race]]\nscenario = "require-*"\nrole = "server"\ntls = "1.3"\nwhen = "server-rejected:*"\n'
    'also = ["server-rejected:closed"]\nrule = "it closes at once after its alert"\n'
    'source = "https://example.invalid/toy/src/close.c#L3"\n'
)


def test_a_race_holds_for_every_cell_it_names_whatever_the_expected_verdict(tmp_path: Path) -> None:
    """SPEC §14: a [[race]] adds its outcomes to each cell it names whose expected verdict
    matches ``when``, keeping the verdict the catalogue or an [[expect]] chose."""
    from harness.results import CellResult

    write_impl(tmp_path, "toy", TOY_SERVER + RACE)
    found = registry.load(folder=tmp_path)
    cells = {c.id: c for c in plan(found)}
    # The catalogue's default verdict, with the race's outcome beside it.
    no_cert = cells["toy-server--toy-client--require-no-client-cert--tls1.3"]
    assert no_cert.expected.verdicts == ("server-rejected:certificate_required", "server-rejected:closed")
    assert no_cert.expected.by == "" and no_cert.expected.races[0].rule == "it closes at once after its alert"
    # An [[expect]]'s verdict and rule (tests/stacks.py) stay; the race adds to them.
    expired_cell = cells["toy-server--toy-client--require-expired-client-cert--tls1.3"]
    assert expired_cell.expected.verdicts == ("server-rejected:bad_certificate", "server-rejected:closed")
    assert expired_cell.expected.rule == "Toy TLS answers every rejected certificate with bad_certificate"
    result = CellResult(expired_cell, "server-rejected:closed")
    assert result.passed and result.racy
    assert result.record()["races"] == [
        {
            "by": "toy",
            "role": "server",
            "also": ["server-rejected:closed"],
            "rule": "it closes at once after its alert",
            "source": "https://example.invalid/toy/src/close.c#L3",
        }
    ]
    assert "race (server-rejected:closed): it closes at once" in CellResult(expired_cell, "ok").explain()
    # Not named: TLS 1.2, a scenario outside the glob, a verdict outside ``when``.
    assert not cells["toy-server--toy-client--require-no-client-cert--tls1.2"].expected.also
    assert not cells["toy-server--toy-client--trusted-client--tls1.3"].expected.also
    assert not cells["toy-server--toy-client--require-trusted-client--tls1.3"].expected.also


def test_a_race_holds_when_the_expected_verdict_is_one_of_its_outcomes_and_follows_like(tmp_path: Path) -> None:
    """A race with two outcomes still adds the other when a cell is expected to end in one
    of them; and a scenario ``like`` another takes that one's races where none names it."""
    race = RACE.replace(
        'also = ["server-rejected:closed"]', 'also = ["server-rejected:closed", "server-rejected:decode_error"]'
    )
    race = race.replace('scenario = "require-*"', 'scenario = ["require-no-client-cert", "leaf-without-intermediate"]')
    race = race.replace('tls = "1.3"\n', "").replace(
        'when = "server-rejected:*"', 'when = ["server-rejected:*", "reported:*"]'
    )
    closed = (
        '[[expect]]\nscenario = "require-no-client-cert"\nrole = "server"\nverdict = "server-rejected:closed"\n'
        'rule = "r"\nsource = "https://example.invalid/t#L1"\n'
    )
    write_impl(tmp_path, "toy", TOY_SERVER + closed + race)
    found = registry.load(folder=tmp_path)
    cells = {c.id: c for c in plan(found)}
    assert cells["toy-server--toy-client--require-no-client-cert--tls1.2"].expected.verdicts == (
        "server-rejected:closed",
        "server-rejected:decode_error",
    )
    like = BY_ID["intermediate-cache"]
    assert like.like == "leaf-without-intermediate"
    assert found.expectation("toy", "toy", like, "1.2").also == (
        "server-rejected:closed",
        "server-rejected:decode_error",
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('when = "server-rejected:*"\n', ""), "when is the expected verdicts"),
        (('also = ["server-rejected:closed"]\n', ""), "also is the list"),
        (('also = ["server-rejected:closed"]', 'also = ["timeout"]'), "cannot be a race's other outcome"),
        (('role = "server"', 'role = "proxy"'), "role must be one of"),
        (('rule = "it closes at once after its alert"\n', ""), "rule must be a non-empty string"),
        (('tls = "1.3"', 'tls = "1.4"'), "tls must be one of"),
        (("\nrole", '\nwhy = "x"\nrole'), "why"),
    ],
)
def test_a_race_is_refused_when_it_is_not_whole(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    assert change[0] in RACE
    write_impl(tmp_path, "toy", TOY_SERVER + RACE.replace(*change))
    with pytest.raises(ManifestError, match=re.escape(problem)):
        registry.load(folder=tmp_path)


def test_a_setting_beyond_the_stacks_defaults_is_declared_data(tmp_path: Path) -> None:
    """SPEC §14: [[settings]] says what a wrapper sets beyond the stack's defaults, why, and where."""
    setting = (
        '[[settings]]\nrole = "server"\nwhat = "session tickets off"\nwhy = "a renegotiation must ask again"\n'
        'source = "https://example.invalid/toy/doc#tickets"\nverdicts = "none"\nneeded_by = ["per-path-client-auth"]\n'
    )
    write_impl(tmp_path, "toy", TOY_SERVER + setting)
    (found,) = registry.load(folder=tmp_path).get("toy").settings
    assert found.record() == {
        "role": "server",
        "what": "session tickets off",
        "why": "a renegotiation must ask again",
        "source": "https://example.invalid/toy/doc#tickets",
        "verdicts": "none",
        "needed_by": ["per-path-client-auth"],
    }
    for broken, problem in (
        (setting.replace('role = "server"', 'role = "proxy"'), "role must be one of"),
        (setting.replace('why = "a renegotiation must ask again"\n', ""), "why must be a non-empty string"),
        (setting.replace("per-path-client-auth", "no-such-scenario"), "needed_by is a list of scenario ids"),
        (setting.replace("per-path-client-auth", "require-*-nothing"), "needed_by is a list of scenario ids"),
    ):
        (tmp_path / "toy" / "impl.toml").write_text(TOY_SERVER + broken)
        with pytest.raises(ManifestError, match=re.escape(problem)):
            registry.load(folder=tmp_path)


def test_every_shipped_setting_says_why_what_it_changes_and_where_to_check() -> None:
    """SPEC §14: a declared setting names a checkable source (a link or a source file; a file of
    this repository it names exists) and says what it changes in the matrix: "none", "not
    measured", or a sentence naming the cells."""
    repo = HARNESS.parent
    declared = [(impl.name, setting) for impl in registry.default().impls for setting in impl.settings]
    assert {name for name, _ in declared} >= {"apache", "gnutls", "java", "python"}
    for name, setting in declared:
        where = f"{name} [[settings]] {setting.what!r}"
        assert len(setting.why) > 20, where
        assert re.search(r"https?://|\.(c|cc|go|rs|js|py|java|erl)\b", setting.source), where
        for path in re.findall(r"\bimages/[\w./-]*\w", setting.source):
            assert (repo / path).is_file(), f"{where}: {path}"
        assert setting.verdicts in ("none", "not measured") or len(setting.verdicts) > 20, where


def test_a_client_that_cannot_check_host_names_makes_wrong_hostname_unsupported(tmp_path: Path) -> None:
    no_check = TOY_SERVER.replace(
        '[client]\nfloor = ["toy-client", "--help"]\n',
        '[client]\nfloor = ["toy-client", "--help"]\nunsupported = { hostname-check = "a debugging tool" }\n',
    )
    write_impl(tmp_path, "toy", no_check)
    found = registry.load(folder=tmp_path)
    cells = {c.id: c for c in plan(found)}
    assert cells["toy-server--toy-client--wrong-hostname--tls1.3"].why_unsupported == "toy client: a debugging tool"
    assert not cells["toy-server--toy-client--trusted-client--tls1.3"].why_unsupported
    assert BY_ID["wrong-hostname"].client_needs == ("hostname-check",)


def test_a_setting_may_be_needed_by_a_whole_mode_or_a_glob(tmp_path: Path) -> None:
    setting = (
        '[[settings]]\nrole = "server"\nwhat = "report errors, do not fail"\nwhy = "report mode"\n'
        'source = "https://example.invalid/doc"\nverdicts = "every report cell"\n'
        'needed_by = ["report-mode", "require-revoked-*"]\n'
    )
    write_impl(tmp_path, "toy", TOY_SERVER + setting)
    (found,) = registry.load(folder=tmp_path).get("toy").settings
    needed = registry.needed_scenarios(found)
    assert "trusted-client" in needed and "require-revoked-client-cert" in needed
    assert "require-trusted-client" not in needed
    assert set(needed) == {s.id for s in CATALOGUE if not s.server.require} | {"require-revoked-client-cert"}
