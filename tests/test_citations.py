"""Citations checkable (SPEC §14): every manifest rule cites what a reader can open and
check, every ``[[expect]]`` decides at least one cell and every ``[[race]]`` holds for one.

A ``source`` (of an ``[[expect]]``, a ``[[race]]`` or a ``[[settings]]`` entry) is one or more citations
separated by ``;`` and a space. A citation may be followed by free text in parentheses and
by further line anchors in the same file (``and #L1912``). A citation is one of:

- **Source at the version Debian ships**, with a line anchor: a GitHub ``blob`` URL at the
  ref that ``PINNED`` names for that repository (a release tag, or the 40-hex commit a
  vendored copy was taken from), ending in ``#L12`` or ``#L12-L20``; or HAProxy's own
  gitweb (its stable branches are not on GitHub) at the tag, ending in ``#l12``. A branch
  (master, main, HEAD) moves, and a tag of another version says nothing about the code
  Debian builds, so both are refused; so is a file without a line.
- **A change**, as a GitHub commit page at its full 40-hex hash: where a rule says a
  behaviour was changed upstream (before or after Debian's version), the commit is the
  evidence, and it has no lines to anchor.
- **A documentation page** of the stack or the protocol, from ``DOCUMENTATION``: each entry
  is the stack's own manual for the version family Debian ships (Java 17, Apache httpd
  2.4, HAProxy 2.6, OpenSSL 3.0, Erlang/OTP 25) or for the exact release (Node.js
  18.20.4), nginx's and lighttpd's documentation, or an RFC. Blogs, issue trackers, pull
  requests and mailing lists are not on the list: they say what someone thought, not
  what the shipped code does.
- **A file Debian itself ships** that no upstream tree has (a changelog entry, a
  configuration file the package installs): ``Debian <package> <version>: /path#L12``,
  the package at the exact version the image installs.
- **A file of this repository** (the harness's own program for a stack):
  ``images/<stack>/<file>#L12``; the test checks that the file and the lines exist.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import registry
from harness.cells import plan
from harness.registry import Expectation, Impl, Race, Registry, _precedence
from harness.scenarios import CATALOGUE
from tests.stacks import TOY_SERVER, write_impl

ROOT = Path(__file__).resolve().parent.parent

#: repository -> the ref its citations must use: the tag of the release Debian 12 ships, or
#: the commit a package without an upstream release tag was taken from. The comment names
#: the Debian package the image installs; where the two differ it says so.
PINNED = {
    "Mbed-TLS/mbedtls": "v2.28.3",  # libmbedtls14 2.28.3-1
    "apache/httpd": "2.4.62",  # read at 2.4.62; the image now installs apache2 2.4.71-1~deb12u1
    "briansmith/ring": "9cc0d45f4d8521f467bb3a621e74b1535e118188",  # ring 0.16, under rustls 0.20.8 (not checked)
    "briansmith/webpki": "0b7cbf2d327d7665d9d06072bf46b2e7ca05f065",  # webpki 0.22, under rustls 0.20.8 (not checked)
    "curl/curl": "curl-7_88_1",  # curl 7.88.1-10+deb12u*
    "erlang/otp": "OTP-25.2.3",  # erlang 1:25.2.3+dfsg-1+deb12u*
    "gnutls/gnutls": "3.7.9",  # libgnutls30 3.7.9-2+deb12u*
    "golang/go": "go1.19.8",  # golang-1.19 1.19.8-2
    "google/boringssl": "1530333b25589ee4d4d52b10e78ee55dd82f6dcd",  # android-13.0.0_r24
    "lighttpd/lighttpd1.4": "lighttpd-1.4.69",  # lighttpd 1.4.69-1
    "nginx/nginx": "release-1.22.1",  # nginx 1.22.1-9+deb12u*
    "nodejs/node": "v18.20.4",  # nodejs 18.20.4+dfsg-1~deb12u*
    "nss-dev/nss": "NSS_3_87_1_RTM",  # libnss3 2:3.87.1-1+deb12u*
    "openjdk/jdk17u": "jdk-17.0.21.1+2",  # openjdk-17 17.0.21.1+2-1~deb12u1: "OpenJDK 17.0.21.1 release, build 2"
    "openssl/openssl": "openssl-3.0.22",  # libssl3 3.0.22-1~deb12u*
    "psf/requests": "v2.28.1",  # python3-requests 2.28.1+dfsg-1
    "python/cpython": "v3.11.2",  # python3.11 3.11.2-6+deb12u*
    "rust-lang/rust": "1.63.0",  # rustc 1.63.0+dfsg1-2: the std the rustls image's programs are built with
    "rustls/rustls": "v/0.20.8",  # librust-rustls-dev 0.20.8
    "wolfSSL/wolfssl": "v5.5.4-stable",  # libwolfssl35 5.5.4-2+deb12u*
}
#: A later Debian generation's own entries ([generation.13] in a manifest) cite the release
#: that generation ships, or Debian 12's (a change is explained at both versions).
PINNED_LATER = {
    "13": {
        "golang/go": "go1.24.4",  # golang-1.24 1.24.4-1 (its source is also golang-1.24-src)
        "lighttpd/lighttpd1.4": "lighttpd-1.4.79",  # lighttpd 1.4.79-2
    },
}
#: HAProxy's stable branches live only in its own gitweb: repository -> tag.
GITWEB_PINNED = {"https://git.haproxy.org/?p=haproxy-2.6.git": "v2.6.12"}  # haproxy 2.6.12-1+deb12u*

#: Documentation pages: URL prefixes (see the module's docstring for why these).
DOCUMENTATION = (
    "https://docs.oracle.com/en/java/javase/17/",
    "https://httpd.apache.org/docs/2.4/",
    "https://docs.haproxy.org/2.6/",
    "https://www.openssl.org/docs/man3.0/",
    "https://nginx.org/en/docs/",
    "https://redmine.lighttpd.net/projects/lighttpd/wiki/Docs_",
    "https://www.rfc-editor.org/rfc/",
    # Erlang/OTP 25's manual (erlang 1:25.2.3+dfsg): the ssl and public_key options the
    # erlang wrapper sets; OTP publishes one manual per major release, none per patch.
    "https://www.erlang.org/docs/25/",
    # Node.js's API documentation of the exact release Debian ships (nodejs 18.20.4): not
    # latest-v18.x, which moves with every v18 release.
    "https://nodejs.org/docs/v18.20.4/api/",
)

_ANCHOR = r"#L(?P<first>\d+)(?:-L(?P<last>\d+))?"
_GITHUB_BLOB = re.compile(r"https://github\.com/(?P<repo>[\w.-]+/[\w.-]+)/blob/(?P<rest>\S+)")
_GITHUB_COMMIT = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+/commit/[0-9a-f]{40}")
_GITWEB = re.compile(r"(?P<repo>https://git\.haproxy\.org/\?p=[\w.-]+\.git);a=blob;f=[\w./-]+;hb=(?P<ref>[\w.-]+)#l\d+")
_DEBIAN = re.compile(r"Debian [a-z0-9][a-z0-9+.-]+ [0-9][\w.+~:-]*: /\S+" + _ANCHOR)
_LOCAL = re.compile(r"(?P<path>images/[\w./-]+)" + _ANCHOR)


def _split(source: str) -> list[str]:
    """The citations of a source: split at "; " outside parentheses (a gitweb URL holds
    semicolons without a space, free text in parentheses may hold any)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(source):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0 and source[i + 1 : i + 2].isspace():
            parts.append(source[start:i])
            start = i + 1
    parts.append(source[start:])
    return [p.strip() for p in parts]


def _tail_problem(tail: str, anchored: bool) -> str | None:
    """What is wrong with what follows a citation: only ``(free text)`` and, after a line
    anchor, ``and #L..`` (more lines of the same file) may follow."""
    while tail:
        tail = tail.lstrip()
        if tail.startswith("("):
            depth = 0
            for i, char in enumerate(tail):
                depth += {"(": 1, ")": -1}.get(char, 0)
                if depth == 0:
                    tail = tail[i + 1 :]
                    break
            else:
                return "an unclosed parenthesis"
            continue
        more = re.match(r"and " + _ANCHOR + r"\b", tail)
        if more and anchored:
            tail = tail[more.end() :]
            continue
        return f"text that is neither a citation nor in parentheses: {tail[:60]!r}"
    return None


def _local_problem(path: str, first: int, last: int) -> str | None:
    file = ROOT / path
    if not file.is_file():
        return f"{path} is not a file of this repository"
    lines = len(file.read_text().splitlines())
    if not 1 <= first <= (last or first) <= lines:
        return f"{path} has {lines} lines, not #L{first}" + (f"-L{last}" if last else "")
    return None


def citation_problem(citation: str, generation: str = registry.DEFAULT_GENERATION) -> str | None:
    """Why ``citation`` (one part of a source) cannot be checked, or None. A later
    ``generation``'s entry may cite its own release as well as Debian 12's."""
    head = citation.split(maxsplit=1)[0] if citation else ""
    if head == "Debian":
        found = _DEBIAN.match(citation)
        if not found:
            return "a Debian file is 'Debian <package> <version>: /path#L12'"
        return _tail_problem(citation[found.end() :], anchored=True)
    if head.startswith("images/"):
        found = _LOCAL.match(citation)
        if not found:
            return "a file of this repository needs a line anchor (#L12 or #L12-L20)"
        return _local_problem(found["path"], int(found["first"]), int(found["last"] or 0)) or _tail_problem(
            citation[found.end() :], anchored=True
        )
    if not head.startswith("https://"):
        return "not a URL, a Debian package's file or a file of this repository"
    tail = citation[len(head) :]
    if any(head.startswith(prefix) for prefix in DOCUMENTATION):
        return _tail_problem(tail, anchored=False)
    if _GITHUB_COMMIT.fullmatch(head):
        return _tail_problem(tail, anchored=False)
    blob = _GITHUB_BLOB.fullmatch(head)
    if blob:
        repo, rest = blob["repo"], blob["rest"]
        if repo not in PINNED:
            return f"{repo} is not in PINNED (add the ref of the version Debian ships)"
        refs = {PINNED[repo], PINNED_LATER.get(generation, {}).get(repo, PINNED[repo])}
        if not any(rest.startswith(ref + "/") for ref in refs):
            wanted = " or ".join(repr(ref) for ref in sorted(refs))
            return f"{repo} cited at {rest.split('/')[0]!r}, not at {wanted} (the version Debian ships)"
        if not re.search(_ANCHOR + "$", rest):
            return "no line anchor (#L12 or #L12-L20)"
        return _tail_problem(tail, anchored=True)
    gitweb = _GITWEB.fullmatch(head)
    if gitweb:
        if GITWEB_PINNED.get(gitweb["repo"]) != gitweb["ref"]:
            return f"{gitweb['repo']} cited at {gitweb['ref']!r}, not at {GITWEB_PINNED.get(gitweb['repo'])!r}"
        return _tail_problem(tail, anchored=False)
    if head.startswith("https://git.haproxy.org/"):
        return "HAProxy's gitweb: ?p=<repo>.git;a=blob;f=<path>;hb=<tag>#l<line>"
    return "neither source pinned to Debian's version with a line anchor, nor a listed documentation page"


def source_problems(source: str, generation: str = registry.DEFAULT_GENERATION) -> list[str]:
    return [
        f"{citation!r}: {problem}" for citation in _split(source) if (problem := citation_problem(citation, generation))
    ]


def _sources() -> Iterator[tuple[str, str, str]]:
    """(where, source, generation) of every entry: a later generation's own entries only."""
    found = registry.default()
    for impl in found.impls:
        mine = own(found, impl)
        for index, expectation in enumerate(impl.expectations):
            if any(expectation is e for e in mine):
                yield f"{impl.name} [[expect]][{index}]", expectation.source, impl.generation
        for index, setting in enumerate(impl.settings):
            if impl.generation == registry.DEFAULT_GENERATION:
                yield f"{impl.name} [[settings]][{index}]", setting.source, impl.generation
        for index, race in enumerate(impl.races):
            if any(race is r for r in mine):
                yield f"{impl.name} [[race]][{index}]", race.source, impl.generation
    for scenario in CATALOGUE:
        yield f"harness/defaults.toml [{scenario.id}]", scenario.source, registry.DEFAULT_GENERATION


def test_every_source_is_pinned_with_lines_or_a_documentation_page() -> None:
    problems = [
        f"{where}: {problem}"
        for where, source, generation in _sources()
        for problem in source_problems(source, generation)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "https://github.com/golang/go/blob/go1.19.8/src/crypto/tls/common.go#L1273-L1301 (SupportsCertificate)",
        "https://github.com/apache/httpd/blob/2.4.62/modules/ssl/ssl_engine_kernel.c#L1793-L1803 and #L1912; "
        "https://httpd.apache.org/docs/2.4/mod/mod_ssl.html#sslverifyclient",
        "https://git.haproxy.org/?p=haproxy-2.6.git;a=blob;f=src/ssl_sock.c;hb=v2.6.12#l4789 (lines 4789-4793)",
        "https://github.com/gnutls/gnutls/commit/a137072ea834630fcefd0e3aa0ca5d9f69fb9523",
        "Debian libssl3 3.0.22-1~deb12u2: /usr/share/doc/libssl3/changelog.Debian.gz#L279",
        "images/nss/request-mtls#L1 ; https://www.rfc-editor.org/rfc/rfc8446#section-4.4.3",
    ],
)
def test_a_checkable_source_passes(source: str) -> None:
    assert source_problems(source) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("https://github.com/openjdk/jdk17u/blob/master/src/X.java#L1", "not at 'jdk-17.0.21.1+2'"),
        ("https://github.com/haproxy/haproxy/blob/v2.6.0/src/ssl_sock.c#L1", "not in PINNED"),
        ("https://github.com/golang/go/blob/go1.19.8/src/crypto/tls/common.go", "no line anchor"),
        ("https://github.com/golang/go/blob/go1.19.8/src/x.go#L1 and the next one", "neither a citation"),
        ("https://github.com/lighttpd/lighttpd1.4/commit/9fd39690", "neither source pinned"),
        ("https://github.com/rustls/rustls/pull/1299", "neither source pinned"),
        ("https://nodejs.org/docs/latest-v18.x/api/tls.html", "neither source pinned"),
        ("https://git.haproxy.org/?p=haproxy-2.6.git;a=blob;f=src/ssl_sock.c;hb=v2.6.0#l1", "not at 'v2.6.12'"),
        ("S: java.base/sun/security/ssl/Alert.java#L291-L293", "not a URL"),
        ("GnuTLS server: https://github.com/gnutls/gnutls/blob/3.7.9/lib/str.c#L1", "not a URL"),
        ("images/nss/request-mtls (pk12util)", "needs a line anchor"),
        ("images/nss/request-mtls#L100000", "lines, not #L100000"),
        ("Debian python3.11 changelog", "'Debian <package> <version>: /path#L12'"),
    ],
)
def test_an_uncheckable_source_is_refused(source: str, problem: str) -> None:
    assert any(problem in found for found in source_problems(source)), source_problems(source)


def deciding(found: Registry, generations: tuple[str, ...] = ()) -> Counter[int]:
    """How many cells of the full default plan (or of ``generations``') each expectation
    decides (by ``id()``): the one Registry.expectation picks, by the same candidates and
    precedence."""
    counts: Counter[int] = Counter()
    for cell in plan(found, generations=generations):
        if cell.why_unsupported:
            continue
        candidates = found._candidates(cell.server, cell.client, cell.scenario.id, cell.tls)
        if not candidates and cell.scenario.like:
            candidates = found._candidates(cell.server, cell.client, cell.scenario.like, cell.tls)
        if candidates:
            chosen = sorted(candidates, key=_precedence)[0]
            assert cell.expected.verdict == chosen.verdict and cell.expected.rule == chosen.rule
            counts[id(chosen)] += 1
    return counts


def own(found: Registry, impl: Impl) -> list[Any]:
    """An implementation's own expectations and races: a later generation's (``name@13``)
    without those it inherits from its manifest, which its Debian 12 self is held to."""
    if impl.generation == registry.DEFAULT_GENERATION:
        return [*impl.expectations, *impl.races]
    earlier = found.get(impl.name.split("@", 1)[0])
    inherited = {dataclasses.replace(e, origin="") for e in [*earlier.expectations, *earlier.races]}
    return [e for e in [*impl.expectations, *impl.races] if dataclasses.replace(e, origin="") not in inherited]


def test_every_expectation_decides_a_cell() -> None:
    """An [[expect]] that no cell reaches is stale knowledge: another manifest's entry wins
    every cell it names, or it names a TLS version or feature its stack declares unsupported.
    A later generation's own entries are held to the plan of every generation."""
    found = registry.default()
    counts = deciding(found)
    if any(own(found, impl) for impl in found.impls if impl.generation != registry.DEFAULT_GENERATION):
        counts += deciding(found, found.generations)
    dead = [
        f"{impl.name} [[expect]][{index}] {_describe(e)}"
        for impl in found.impls
        for index, e in enumerate(impl.expectations)
        if not counts[id(e)] and any(e is mine for mine in own(found, impl))
    ]
    assert not dead, "these decide no cell of the default plan:\n" + "\n".join(dead)


def test_every_race_holds_for_a_cell() -> None:
    """A [[race]] that no cell of the default plan takes (its scenarios, TLS version, peers
    or expected verdicts meet none) is stale knowledge too."""
    dead = idle_races(registry.default())
    assert not dead, "these races hold for no cell of the default plan:\n" + "\n".join(dead)


def idle_races(found: Registry) -> list[str]:
    mine = {id(race): impl for impl in found.impls for race in own(found, impl) if isinstance(race, Race)}
    later = any(impl.generation != registry.DEFAULT_GENERATION for impl in mine.values())
    cells = plan(found, generations=found.generations if later else ())
    taken = {id(race) for cell in cells if not cell.why_unsupported for race in cell.expected.races}
    return [
        f"{impl.name} {race.origin}"
        for impl in found.impls
        for race in impl.races
        if id(race) in mine and id(race) not in taken
    ]


def test_a_race_for_a_tls_version_its_stack_cannot_run_holds_for_nothing(tmp_path: Path) -> None:
    toy = TOY_SERVER.replace("unsupported = { crl", 'unsupported = { "tls1.3" = "Toy TLS stops at 1.2", crl')
    race = (
        '[[race]]\nscenario = "require-*"\nrole = "server"\ntls = "{tls}"\nwhen = "server-rejected:*"\n'
        'also = ["server-rejected:closed"]\nrule = "r"\nsource = "https://example.invalid/t#L1"\n'
    )
    write_impl(tmp_path, "toy", toy + race.format(tls="1.3") + race.format(tls="1.2"))
    assert idle_races(registry.load(folder=tmp_path)) == [f"toy {tmp_path}/toy/impl.toml [[race]][0]"]


def _describe(expectation: Expectation) -> str:
    peer = f" peer={list(expectation.peer)}" if expectation.peer else ""
    tls = f" tls={expectation.tls}" if expectation.tls else ""
    return f"role={expectation.role} scenario={list(expectation.scenarios)}{tls}{peer} -> {expectation.verdict}"


def test_a_shadowed_or_unreachable_expectation_decides_nothing(tmp_path: Path) -> None:
    """The failure that proves the check: a client's entry that the server's own entry for
    the same cells wins over, and an entry for a TLS version its stack cannot run."""
    toy = TOY_SERVER.replace("unsupported = { crl", 'unsupported = { "tls1.3" = "Toy TLS stops at 1.2", crl')
    toy += (
        '[[expect]]\nscenario = "require-expired-client-cert"\nrole = "server"\ntls = "1.3"\n'
        'verdict = "server-rejected:certificate_expired"\nrule = "r"\nsource = "https://example.invalid/t#L1"\n'
    )
    write_impl(tmp_path, "toy", toy)
    write_impl(
        tmp_path,
        "other",
        'name = "other"\nstack = "Other 2"\nroles = ["client"]\nimage = "example/other"\n'
        '[version]\nargv = ["other", "-V"]\n[[client.errors]]\ninclude = "openssl.errors"\n'
        '[[expect]]\nscenario = "require-expired-client-cert"\nrole = "client"\n'
        'verdict = "server-rejected:certificate_expired"\nrule = "r"\nsource = "https://example.invalid/o#L1"\n',
    )
    found = registry.load(folder=tmp_path)
    counts = deciding(found)
    live, unreachable = found.get("toy").expectations
    (shadowed,) = found.get("other").expectations
    assert counts[id(live)] > 0
    assert counts[id(unreachable)] == 0 and counts[id(shadowed)] == 0
