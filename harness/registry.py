"""The implementations, discovered as folders: ``images/<name>/impl.toml`` (SPEC §6).

An implementation is one folder holding its Dockerfile, its small programs and a
manifest. The manifest says, as data, everything the harness needs to know about the
stack: its roles and image, how to start its server and client (argv templates,
including the tutorial's own command lines), what it cannot do and why, its version
probe and no-op floor, whether its server needs a fresh process per cell, its error map
(native words -> verdict, harness.rules) and the expectations where it differs from
the catalogue's default, each with the rule from the stack's own source.

Nothing else in the harness names an implementation: adding a stack is adding a folder
(or ``--impl PATH`` for a user's own, SPEC §13). ``images/MANIFEST.md`` documents the
format; this module is its one reader.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.features import CLIENT_VALUES, FEATURES, SERVER_VALUES, contract_server_argv, server_needs
from harness.rules import ManifestError, Table, check_verdict, parse_table
from harness.scenarios import BY_ID, NO_CA_NAMES, TLS_VERSIONS, ClientSide, Scenario, ServerSide

if TYPE_CHECKING:
    from harness.cells import Cell

MANIFEST = "impl.toml"
#: Debian releases an image can be built on, by number, with the suite each one is; the
#: first is the default generation, whose implementations carry their plain name. A
#: manifest's ``[generation.13]`` table adds ``<name>@13`` (images/MANIFEST.md).
GENERATIONS = {"12": "bookworm", "13": "trixie"}
DEFAULT_GENERATION = "12"
ROLES = ("server", "client")
DEFAULT_PORT = 9443
#: The contract's commands (images/CONTRACT.md): used when a manifest gives no argv.
CONTRACT_SERVER_ARGV: list[Any] = contract_server_argv()
CONTRACT_CLIENT_ARGV: list[Any] = [
    "request-mtls",
    {"if": ["cert", "key"], "argv": ["--key", "{key}", "--cert", "{cert}"]},
    {"if": "root_ca", "argv": ["--root-ca", "{root_ca}"]},
    {"if": "url", "argv": ["--url", "{url}"]},
]
#: The contract's failure lines: ``   Error Code: X`` and ``Error Message: Y`` on stderr.
CONTRACT_CODE = r"^\s*Error Code: (\S+)\s*$"
CONTRACT_MESSAGE = r"^Error Message: (.*)$"

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")

#: Maps a path relative to the certificates folder to what the program is given.
PathIn = Callable[[str], str]
Values = Mapping[str, "str | bool | None"]


def images_dir() -> Path:
    """The implementation folders shipped with the package (package data ``mtls_harness_images``)."""
    import mtls_harness_images

    return Path(mtls_harness_images.__file__).resolve().parent


# --- argv templates --------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """An argv template: strings with ``{placeholders}``, and optional groups
    ``{ if = "name" | [names], unless = ..., argv = [...] }`` kept only when every ``if``
    value is set (non-empty, true) and no ``unless`` value is."""

    items: tuple[Any, ...]

    def render(self, values: Values) -> tuple[str, ...]:
        return tuple(_render(self.items, values))


def _set(values: Values, name: str) -> bool:
    value = values.get(name)
    return value is not None and value is not False and value != ""


def _render(items: Iterable[Any], values: Values) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(_PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or ""), item))
            continue
        wanted = item.get("if", [])
        unwanted = item.get("unless", [])
        wanted = [wanted] if isinstance(wanted, str) else wanted
        unwanted = [unwanted] if isinstance(unwanted, str) else unwanted
        if all(_set(values, n) for n in wanted) and not any(_set(values, n) for n in unwanted):
            out += _render(item["argv"], values)
    return out


def _template(value: object, origin: str, known: Sequence[str]) -> Template:
    def check(items: object, where: str) -> None:
        if not isinstance(items, list) or not items:
            raise ManifestError(f"{where}: an argv template is a non-empty list")
        for item in items:
            if isinstance(item, str):
                for name in _PLACEHOLDER.findall(item):
                    if name not in known:
                        raise ManifestError(f"{where}: unknown placeholder {{{name}}} (use {', '.join(known)})")
            elif isinstance(item, dict):
                extra = set(item) - {"if", "unless", "argv"}
                if extra or "argv" not in item:
                    raise ManifestError(f"{where}: a group is {{ if = ..., unless = ..., argv = [...] }}, got {item}")
                for key in ("if", "unless"):
                    names = item.get(key, [])
                    for name in [names] if isinstance(names, str) else names:
                        if name not in known:
                            raise ManifestError(f"{where}: unknown condition {name!r} (use {', '.join(known)})")
                check(item["argv"], where)
            else:
                raise ManifestError(f"{where}: argv items are strings or groups, got {item!r}")

    check(value, origin)
    assert isinstance(value, list)
    return Template(tuple(value))


# --- the manifest ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    argv: Template
    tutorial_argv: Template | None
    workdir: str | None
    #: The features it lacks (its manifest's ``unsupported`` table), each with why.
    lacks: Mapping[str, str]
    ready: str
    fresh_process: bool
    native_names: str | None
    reasons: Table
    responses: Table
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchSpec:
    """A client's batch worker (images/CONTRACT.md, "Batch workers"): ``argv`` starts it in
    the client's working folder; it serves the one-shot commands that begin with one of
    ``programs`` (each a list of leading arguments), nothing else."""

    argv: tuple[str, ...]
    programs: tuple[tuple[str, ...], ...]
    workdir: str | None

    def serves(self, argv: Sequence[str]) -> bool:
        return any(tuple(argv[: len(p)]) == p for p in self.programs)


@dataclass(frozen=True)
class ClientSpec:
    argv: Template
    tutorial_argv: Template | None
    workdir: str | None
    #: The features it lacks (its manifest's ``unsupported`` table), each with why.
    lacks: Mapping[str, str]
    floor: tuple[str, ...]
    bare_floor: tuple[str, ...] | None
    code: re.Pattern[str]
    message: re.Pattern[str]
    body_prefixes: tuple[str, ...]
    errors: Table
    batch: BatchSpec | None = None


def _selects(
    scenarios: tuple[str, ...], tls: str | None, peers: tuple[str, ...] | None, scenario: str, at: str, peer: str
) -> bool:
    """Whether an [[expect]] or a [[race]] naming ``scenarios`` (ids or globs), ``tls`` and
    ``peers`` (None: any) names the cell of ``scenario`` over TLS ``at`` with ``peer``. A
    peer named without a generation (``node``) is that stack on every generation
    (``node@13`` too) until an entry names the later one itself."""
    return (
        any(fnmatch.fnmatchcase(scenario, pattern) for pattern in scenarios)
        and tls in (None, at)
        and (peers is None or peer in peers or peer.split("@", 1)[0] in peers)
    )


@dataclass(frozen=True)
class Expectation:
    """Where this stack's verdict differs from the catalogue's default, and why."""

    scenarios: tuple[str, ...]
    role: str
    verdict: str
    rule: str
    source: str
    origin: str
    tls: str | None = None
    peer: tuple[str, ...] | None = None  # the other side's implementations (manifest: a name or a list)
    native: str | None = None
    wire: str | None = None  # what the capture shows instead of the scenario's wire (WIRE_OVERRIDES)
    # A race inside the stack (SPEC §14): the other verdicts it can end in; the rule says why.
    also: tuple[str, ...] = ()

    def matches(self, scenario: str, tls: str, peer: str) -> bool:
        return _selects(self.scenarios, self.tls, self.peer, scenario, tls, peer)


@dataclass(frozen=True)
class Race:
    """A race inside the stack (SPEC §14, "Races as data") that holds whatever the cell's
    expected verdict is: every cell it matches whose expected verdict matches ``when`` may
    also end in ``also``. One rule for many cells, e.g. a server that closes at once after
    its alert, so that a TCP reset can reach the client first, in every rejection."""

    scenarios: tuple[str, ...]
    role: str
    when: tuple[str, ...]  # globs over the expected verdict, e.g. "server-rejected:*"
    also: tuple[str, ...]
    rule: str
    source: str
    origin: str
    tls: str | None = None
    peer: tuple[str, ...] | None = None

    def matches(self, scenario: str, tls: str, peer: str) -> bool:
        return _selects(self.scenarios, self.tls, self.peer, scenario, tls, peer)

    def holds_for(self, verdict: str) -> bool:
        """Whether the race applies to a cell expected to end in ``verdict``."""
        return any(fnmatch.fnmatchcase(verdict, pattern) for pattern in self.when) and bool(set(self.also) - {verdict})


@dataclass(frozen=True)
class Setting:
    """A setting the wrapper makes beyond the stack's own mTLS example or defaults (SPEC §14,
    "Settings declared"): what it is, why the wrapper makes it, and where the stack documents
    it. ``needed_by``: the scenarios that need it (it is made only for them); ``verdicts``:
    what it changes in the matrix, or "none"."""

    role: str
    what: str
    why: str
    source: str
    verdicts: str = "none"
    needed_by: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "what": self.what,
            "why": self.why,
            "source": self.source,
            "verdicts": self.verdicts,
            **({"needed_by": list(self.needed_by)} if self.needed_by else {}),
        }


@dataclass(frozen=True)
class Impl:
    name: str
    folder: Path
    stack: str
    summary: str
    roles: tuple[str, ...]
    image: str
    build: bool
    version_argv: tuple[str, ...]
    server: ServerSpec | None
    client: ClientSpec | None
    expectations: tuple[Expectation, ...]
    builtin: bool = True
    settings: tuple[Setting, ...] = ()
    races: tuple[Race, ...] = ()
    #: The folder its image is built from (its own, or its family's shared one) and the
    #: build arguments that pick its variant there.
    context: Path | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    #: The Debian release its image is built on (GENERATIONS); ``name@13`` for a later one.
    generation: str = DEFAULT_GENERATION

    @property
    def build_context(self) -> Path:
        return self.context or self.folder

    @property
    def recorded_dir(self) -> Path:
        """Real outputs of this stack's client, replayed by the unit tests against this manifest."""
        return self.folder / "recorded"

    def lacking(self) -> dict[str, str]:
        """Every feature this implementation lacks, by role ("server crl"), with its reason."""
        found: dict[str, str] = {}
        for role, spec in (("server", self.server), ("client", self.client)):
            if spec is not None:
                found.update({f"{role} {k}": v for k, v in spec.lacks.items()})
        return found

    def record(self, image: str, version: str) -> dict[str, Any]:
        """What ``mtls-harness impls`` and results.json show of it: the stack, its roles,
        the image, the version it said, what it lacks and the settings its wrapper makes."""
        return {
            "stack": self.stack,
            "summary": self.summary,
            "roles": list(self.roles),
            "image": image,
            "version": version,
            "builtin": self.builtin,
            "generation": self.generation,
            "unsupported": self.lacking(),
            "settings": [setting.record() for setting in self.settings],
        }


def _str(doc: Mapping[str, Any], key: str, origin: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ManifestError(f"{origin}: {key} must be a non-empty string")
    return value


def _argv(doc: Mapping[str, Any], key: str, origin: str) -> tuple[str, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{origin}: {key} must be a non-empty list of strings")
    return tuple(value)


def _lacks(doc: Mapping[str, Any], origin: str) -> dict[str, str]:
    table = doc.get("unsupported", {})
    if not isinstance(table, dict):
        raise ManifestError(f'{origin}.unsupported: a table of feature = "reason"')
    for feature, reason in table.items():
        if feature not in FEATURES:
            raise ManifestError(f"{origin}.unsupported: unknown feature {feature!r} (use {', '.join(FEATURES)})")
        if not isinstance(reason, str) or not reason.strip():
            raise ManifestError(f"{origin}.unsupported.{feature}: say why, as a non-empty string")
    return dict(table)


def _check_keys(doc: Mapping[str, Any], allowed: set[str], origin: str) -> None:
    unknown = set(doc) - allowed
    if unknown:
        raise ManifestError(
            f"{origin}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})"
        )


# The only capabilities a manifest may ask for its server container, and only when the
# harness runs as root: what a server that starts as root needs to switch its workers to
# an unprivileged user (Apache's mod_unixd). Nothing that reads or changes what it should not.
DROPPING_CAPABILITIES = frozenset({"SETUID", "SETGID"})


def _server_spec(doc: Mapping[str, Any], origin: str) -> ServerSpec:
    _check_keys(
        doc,
        {
            "argv",
            "tutorial_argv",
            "workdir",
            "unsupported",
            "ready",
            "fresh_process",
            "native_names",
            "reasons",
            "responses",
            "capabilities",
        },
        origin,
    )
    capabilities = doc.get("capabilities", [])
    if not isinstance(capabilities, list) or not set(capabilities) <= DROPPING_CAPABILITIES:
        raise ManifestError(
            f"{origin}.capabilities may hold only {sorted(DROPPING_CAPABILITIES)} "
            "(what a server needs to drop root for its worker processes)"
        )
    fresh = doc.get("fresh_process", False)
    if not isinstance(fresh, bool):
        raise ManifestError(f"{origin}.fresh_process must be true or false")
    return ServerSpec(
        argv=_template(doc.get("argv", CONTRACT_SERVER_ARGV), f"{origin}.argv", SERVER_VALUES),
        tutorial_argv=(
            _template(doc["tutorial_argv"], f"{origin}.tutorial_argv", SERVER_VALUES)
            if "tutorial_argv" in doc
            else None
        ),
        workdir=doc.get("workdir"),
        lacks=_lacks(doc, origin),
        ready=_str(doc, "ready", origin, "listening at"),
        fresh_process=fresh,
        native_names=doc.get("native_names"),
        reasons=parse_table(doc.get("reasons"), f"{origin}.reasons", ("reason", "log")),
        responses=parse_table(doc.get("responses"), f"{origin}.responses", ("body", "log")),
        capabilities=tuple(capabilities),
    )


def _client_spec(doc: Mapping[str, Any], origin: str) -> ClientSpec:
    _check_keys(
        doc,
        {
            "argv",
            "tutorial_argv",
            "workdir",
            "unsupported",
            "floor",
            "bare_floor",
            "output",
            "errors",
            "body_prefixes",
            "batch",
        },
        origin,
    )
    output = doc.get("output", {})
    if not isinstance(output, dict) or set(output) - {"code", "message"}:
        raise ManifestError(f"{origin}.output: a table with code and message regular expressions")
    patterns = {}
    for key, default in (("code", CONTRACT_CODE), ("message", CONTRACT_MESSAGE)):
        try:
            patterns[key] = re.compile(output.get(key, default), re.MULTILINE)
        except (re.error, TypeError) as exc:
            raise ManifestError(f"{origin}.output.{key}: not a regular expression ({exc})") from exc
        if patterns[key].groups < 1:
            raise ManifestError(f"{origin}.output.{key}: the regular expression needs one group")
    prefixes = doc.get("body_prefixes", [])
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        raise ManifestError(f"{origin}.body_prefixes must be a list of strings")
    return ClientSpec(
        argv=_template(doc.get("argv", CONTRACT_CLIENT_ARGV), f"{origin}.argv", CLIENT_VALUES),
        tutorial_argv=(
            _template(doc["tutorial_argv"], f"{origin}.tutorial_argv", CLIENT_VALUES)
            if "tutorial_argv" in doc
            else None
        ),
        workdir=doc.get("workdir"),
        lacks=_lacks(doc, origin),
        floor=_argv(doc, "floor", origin) if "floor" in doc else ("request-mtls", "--help"),
        bare_floor=_argv(doc, "bare_floor", origin) if "bare_floor" in doc else None,
        code=patterns["code"],
        message=patterns["message"],
        body_prefixes=tuple(prefixes),
        errors=parse_table(doc.get("errors"), f"{origin}.errors", ("code", "message", "stderr", "stdout")),
        batch=_batch(doc["batch"], f"{origin}.batch", doc.get("workdir")) if "batch" in doc else None,
    )


def _batch(doc: object, origin: str, workdir: str | None) -> BatchSpec:
    if not isinstance(doc, dict):
        raise ManifestError(f"{origin}: a table with argv and programs")
    _check_keys(doc, {"argv", "programs"}, origin)
    argv = _argv(doc, "argv", origin)
    programs = doc.get("programs")
    if (
        not isinstance(programs, list)
        or not programs
        or not all(isinstance(p, list) and p and all(isinstance(a, str) and a for a in p) for p in programs)
    ):
        raise ManifestError(
            f"{origin}.programs: a list of the one-shot commands it serves, each a list of leading arguments "
            '(e.g. [["request-mtls"]])'
        )
    return BatchSpec(argv, tuple(tuple(p) for p in programs), workdir)


#: What an [[expect]] may say the capture shows instead of its scenario's wire.
#: "no-server-hello": the server ends the connection after the ClientHello, without an
#: alert, so there is no CertificateRequest, no client Certificate and no TLS version.
#: "client-aborts": the client ends the handshake after the ServerHello, before any
#: Certificate of its own.
WIRE_OVERRIDES = ("no-server-hello", "client-aborts")


def _tables(entries: object, origin: str, key: str, noun: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each table of a manifest's [[key]] list, with where it is; a list of anything else is
    one clear error."""
    if entries is None:
        return
    if not isinstance(entries, list):
        raise ManifestError(f"{origin}: {key} is a list of [[{key}]] tables")
    for index, entry in enumerate(entries):
        where = f"{origin}[{index}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: {noun} is a table")
        yield where, entry


def _expectations(entries: object, origin: str, roles: tuple[str, ...]) -> tuple[Expectation, ...]:
    found = []
    for where, entry in _tables(entries, origin, "expect", "an expectation"):
        _check_keys(
            entry, {"scenario", "role", "tls", "peer", "verdict", "native", "rule", "source", "wire", "also"}, where
        )
        wire = entry.get("wire")
        if wire is not None and wire not in WIRE_OVERRIDES:
            raise ManifestError(f"{where}: wire must be one of {', '.join(WIRE_OVERRIDES)}")
        scenarios, role, tls, peer = _selectors(entry, where, roles)
        verdict = _str(entry, "verdict", where)
        check_verdict(verdict, where)
        also = _also(entry.get("also"), verdict, where)
        rule = _str(entry, "rule", where)
        source = _str(entry, "source", where)
        found.append(
            Expectation(
                scenarios,
                role,
                verdict,
                rule,
                source,
                where,
                tls,
                peer,
                entry.get("native"),
                wire,
                also,
            )
        )
    return tuple(found)


def _selectors(
    entry: Mapping[str, Any], where: str, roles: tuple[str, ...]
) -> tuple[tuple[str, ...], str, str | None, tuple[str, ...] | None]:
    """The cells an [[expect]] or a [[race]] names: scenario ids or globs, the role, the TLS
    version (None: both) and the peers (None: every one)."""
    scenarios = entry.get("scenario")
    scenarios = [scenarios] if isinstance(scenarios, str) else scenarios
    if not isinstance(scenarios, list) or not scenarios or not all(isinstance(s, str) for s in scenarios):
        raise ManifestError(f"{where}: scenario is an id, a glob or a list of them")
    for pattern in scenarios:
        if not any(fnmatch.fnmatchcase(known, pattern) for known in BY_ID):
            raise ManifestError(f"{where}: scenario {pattern!r} matches no scenario of the catalogue")
    role = entry.get("role")
    if role not in roles:
        raise ManifestError(f"{where}: role must be one of this implementation's roles ({', '.join(roles)})")
    tls = entry.get("tls")
    if tls is not None and tls not in TLS_VERSIONS:
        raise ManifestError(f"{where}: tls must be one of {', '.join(TLS_VERSIONS)}")
    peer = entry.get("peer")
    peer = [peer] if isinstance(peer, str) else peer
    if peer is not None and (not isinstance(peer, list) or not peer or not all(isinstance(p, str) for p in peer)):
        raise ManifestError(f"{where}: peer is an implementation's name or a list of them")
    return tuple(scenarios), str(role), tls, tuple(peer) if peer is not None else None


def _races(entries: object, origin: str, roles: tuple[str, ...]) -> tuple[Race, ...]:
    found = []
    for where, entry in _tables(entries, origin, "race", "a race"):
        _check_keys(entry, {"scenario", "role", "tls", "peer", "when", "also", "rule", "source"}, where)
        scenarios, role, tls, peer = _selectors(entry, where, roles)
        when = entry.get("when")
        when = [when] if isinstance(when, str) else when
        if not isinstance(when, list) or not when or not all(isinstance(w, str) and w for w in when):
            raise ManifestError(f"{where}: when is the expected verdicts the race holds for (a glob or a list)")
        if entry.get("also") is None:
            raise ManifestError(f"{where}: also is the list of the other verdicts the race can end in")
        also = _also(entry.get("also"), "", where)
        found.append(
            Race(
                scenarios,
                role,
                tuple(when),
                also,
                _str(entry, "rule", where),
                _str(entry, "source", where),
                where,
                tls,
                peer,
            )
        )
    return tuple(found)


def _also(value: object, verdict: str, where: str) -> tuple[str, ...]:
    """``also``: the other verdicts a race inside the stack can end in (SPEC §14, "Races as
    data"). Never the expected verdict itself, never ``timeout`` (a harness's limit is no
    race of the stack's), and the rule must say which race it is."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{where}.also: a list of the other verdicts the stack's own race can end in")
    for each in value:
        check_verdict(each, f"{where}.also")
        if each == verdict or each in ("timeout", "unsupported") or each.startswith("harness-error"):
            raise ManifestError(f"{where}.also: {each!r} cannot be a race's other outcome")
    if len(set(value)) != len(value):
        raise ManifestError(f"{where}.also: a verdict listed twice")
    return tuple(value)


def load_manifest(path: Path, builtin: bool = True) -> Impl:
    """One implementation from its manifest, or a ManifestError naming the file and the problem."""
    return load_generations(path, builtin)[0]


def load_generations(path: Path, builtin: bool = True) -> list[Impl]:
    """The implementation a manifest describes, on the default generation, then one for each
    later Debian generation its ``[generation.N]`` tables add: ``<name>@N``, the manifest
    with that table over it (what differs as data: build arguments, versions, unsupported
    features, expectations), built on that generation's base."""
    folder = path.parent
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"no manifest at {path} (an implementation folder holds {MANIFEST})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    origin = str(path)
    doc = _with_includes(doc, folder, origin)
    later = doc.pop("generation", {})
    if not isinstance(later, dict) or not all(isinstance(v, dict) for v in later.values()):
        raise ManifestError(f"{origin}: generation is a table of tables, [generation.13]")
    impls = [_impl(doc, folder, origin, builtin, DEFAULT_GENERATION)]
    for generation, table in sorted(later.items()):
        where = f"{origin} [generation.{generation}]"
        if generation not in GENERATIONS or generation == DEFAULT_GENERATION:
            later_ones = [g for g in GENERATIONS if g != DEFAULT_GENERATION]
            raise ManifestError(f"{where}: not a later Debian generation (use {', '.join(later_ones)})")
        if {"name", "generation", "include"} & set(table):
            raise ManifestError(f"{where}: name, generation and include are the manifest's own")
        impls.append(_impl(_merge(doc, table), folder, where, builtin, generation))
    return impls


def _impl(doc: dict[str, Any], folder: Path, origin: str, builtin: bool, generation: str) -> Impl:
    _check_keys(
        doc,
        {
            "name",
            "stack",
            "summary",
            "roles",
            "image",
            "build",
            "version",
            "server",
            "client",
            "expect",
            "race",
            "settings",
        },
        origin,
    )
    name = _str(doc, "name", origin)
    if not _NAME.match(name):
        raise ManifestError(f"{origin}: name {name!r} must be lower-case letters, digits and dashes")
    roles = doc.get("roles")
    if not isinstance(roles, list) or not roles or set(roles) - set(ROLES):
        raise ManifestError(f"{origin}: roles must be a list of server and/or client")
    for role in ROLES:
        if (role in roles) != (role in doc) and role in doc:
            raise ManifestError(f"{origin}: a [{role}] table but {role} is not among its roles")
    context, build_args, build = _build(doc.get("build"), folder, origin)
    image = doc.get("image", f"mtls-harness/{name}")
    if generation != DEFAULT_GENERATION:
        if not build:
            raise ManifestError(f"{origin}: a later generation is built by the harness (a Dockerfile or [build])")
        name = f"{name}@{generation}"
        repository, colon, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        image = f"{repository}-{generation}{colon}{tag}"
        build_args = tuple(sorted({**dict(build_args), "GENERATION": generation}.items()))
    if not build and "image" not in doc:
        raise ManifestError(f"{origin}: no Dockerfile beside the manifest, so image must name an existing image")
    version = doc.get("version", {})
    if not isinstance(version, dict):
        raise ManifestError(f"{origin}: [version] is a table with argv")
    return Impl(
        name=name,
        folder=folder,
        stack=_str(doc, "stack", origin),
        summary=_str(doc, "summary", origin, ""),
        roles=tuple(r for r in ROLES if r in roles),
        image=image,
        build=bool(build),
        version_argv=_argv(version, "argv", f"{origin} [version]"),
        server=_server_spec(doc.get("server", {}), f"{origin} [server]") if "server" in roles else None,
        client=_client_spec(doc.get("client", {}), f"{origin} [client]") if "client" in roles else None,
        expectations=_expectations(doc.get("expect"), f"{origin} [[expect]]", tuple(r for r in ROLES if r in roles)),
        builtin=builtin,
        settings=_settings(doc.get("settings"), f"{origin} [[settings]]", tuple(r for r in ROLES if r in roles)),
        races=_races(doc.get("race"), f"{origin} [[race]]", tuple(r for r in ROLES if r in roles)),
        context=context,
        build_args=build_args,
        generation=generation,
    )


def _build(value: Any, folder: Path, origin: str) -> tuple[Path | None, tuple[tuple[str, str], ...], bool]:
    """``build``: true/false, or a table naming a shared build context and the arguments that
    pick this variant there (a family of stacks, images/MANIFEST.md). Returns the context
    (None: the manifest's own folder), the arguments, and whether the harness builds it."""
    if value is None or isinstance(value, bool):
        dockerfile = (folder / "Dockerfile").is_file()
        build = dockerfile if value is None else value
        if build and not dockerfile:
            raise ManifestError(f"{origin}: build = true but there is no Dockerfile beside the manifest")
        return None, (), build
    if not isinstance(value, dict):
        raise ManifestError(f"{origin}: build is true, false or a table with context and args")
    _check_keys(value, {"context", "args"}, f"{origin} [build]")
    relative = value.get("context", ".")
    if not isinstance(relative, str) or not relative:
        raise ManifestError(f"{origin} [build]: context is a folder, relative to the manifest")
    context = (folder / relative).resolve()
    if not (context / "Dockerfile").is_file():
        raise ManifestError(f"{origin} [build]: no Dockerfile in the build context {context}")
    args = value.get("args", {})
    if not isinstance(args, dict) or not all(
        isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and isinstance(v, str)
        for k, v in args.items()
    ):
        raise ManifestError(f"{origin} [build]: args is a table of build argument names and string values")
    if {"BASE", "GENERATION"} & set(args):
        raise ManifestError(f"{origin} [build]: BASE and GENERATION are the harness's own build arguments")
    return context, tuple(sorted(args.items())), True


def _with_includes(doc: dict[str, Any], folder: Path, origin: str) -> dict[str, Any]:
    """The manifest with the fragments its ``include`` names (paths relative to it) beneath
    it: tables merge key by key, the manifest's own values winning; arrays of tables are
    joined, the manifest's own entries first (first match wins in reasons and errors)."""
    includes = doc.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) and i for i in includes):
        raise ManifestError(f"{origin}: include is a file (or a list of them), relative to the manifest")
    merged: dict[str, Any] = {}
    for relative in includes:
        path = folder / relative
        try:
            fragment = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ManifestError(f"{origin}: include {relative!r}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{path}: {exc}") from exc
        for key in ("include", "name"):
            if key in fragment:
                raise ManifestError(f"{path}: an included fragment has no {key} (only a manifest does)")
        merged = _merge(merged, fragment)
    return _merge(merged, doc)


def _merge(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(under)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            out[key] = _merge(below, value)
        elif isinstance(below, list) and isinstance(value, list) and _is_tables(below) and _is_tables(value):
            out[key] = [*value, *below]
        else:
            out[key] = value
    return out


def _is_tables(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(v, dict) for v in value)


#: ``needed_by`` may name a server mode: every scenario whose server runs in that mode.
MODES = ("report-mode", "require-mode")


def _names_scenarios(name: str) -> bool:
    return name in MODES or any(fnmatch.fnmatchcase(known, name) for known in BY_ID)


def needed_scenarios(setting: Setting) -> list[str]:
    """The scenario ids a setting's ``needed_by`` names (modes and globs expanded)."""
    found = []
    for scenario in BY_ID.values():
        mode = "require-mode" if scenario.server.require else "report-mode"
        if any(n == mode or fnmatch.fnmatchcase(scenario.id, n) for n in setting.needed_by):
            found.append(scenario.id)
    return found


def _settings(entries: object, origin: str, roles: tuple[str, ...]) -> tuple[Setting, ...]:
    found = []
    for where, entry in _tables(entries, origin, "settings", "a setting"):
        _check_keys(entry, {"role", "what", "why", "source", "verdicts", "needed_by"}, where)
        role = entry.get("role")
        if role not in roles:
            raise ManifestError(f"{where}: role must be one of this implementation's roles ({', '.join(roles)})")
        needed = entry.get("needed_by", [])
        if not isinstance(needed, list) or not all(isinstance(n, str) and _names_scenarios(n) for n in needed):
            raise ManifestError(
                f"{where}: needed_by is a list of scenario ids or globs of the catalogue, "
                f"or {' / '.join(MODES)} (every scenario of that mode)"
            )
        found.append(
            Setting(
                role,
                _str(entry, "what", where),
                _str(entry, "why", where),
                _str(entry, "source", where),
                _str(entry, "verdicts", where, "none") or "none",
                tuple(needed),
            )
        )
    return tuple(found)


# --- the registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A cell's expected verdict; ``rule`` and ``source`` say why when it differs from the default."""

    verdict: str
    native: str | None = None
    rule: str = ""
    source: str = ""
    wire: str | None = None
    by: str = ""  # the implementation whose manifest says so ("" for the catalogue's default)
    also: tuple[str, ...] = ()  # a race inside the stack: the other verdicts it can end in
    # The [[race]] entries that add to ``also`` (their rules and sources are theirs).
    races: tuple[Race, ...] = ()
    #: The role ``by`` has in the cell, as its [[expect]] says: a stack can be both server
    #: and client of one cell, and only this tells which of its expectations decided it.
    by_role: str = ""

    @property
    def verdicts(self) -> tuple[str, ...]:
        """Every verdict the cell may end in: the expected one first."""
        return (self.verdict, *self.also)


def _precedence(expectation: Expectation) -> tuple[bool, bool]:
    """Sort key of Registry.expectation: a client's own error first, then a peer-specific one."""
    own_error = expectation.role == "client" and expectation.verdict.startswith("client-error:")
    return not own_error, expectation.peer is None


@dataclass(frozen=True)
class Registry:
    impls: tuple[Impl, ...]
    _by_name: dict[str, Impl] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for impl in self.impls:
            if impl.name in self._by_name:
                raise ManifestError(
                    f"two implementations are named {impl.name!r}: {self._by_name[impl.name].folder} and {impl.folder}"
                )
            self._by_name[impl.name] = impl

    @property
    def generations(self) -> tuple[str, ...]:
        """The Debian generations its implementations are built for."""
        return tuple(g for g in GENERATIONS if any(i.generation == g for i in self.impls))

    @property
    def servers(self) -> tuple[str, ...]:
        """The servers of the default generation (``check`` reaches the others)."""
        return tuple(i.name for i in self.impls if i.server is not None and i.generation == DEFAULT_GENERATION)

    @property
    def clients(self) -> tuple[str, ...]:
        """The clients of the default generation (``check`` reaches the others)."""
        return tuple(i.name for i in self.impls if i.client is not None and i.generation == DEFAULT_GENERATION)

    def get(self, name: str) -> Impl:
        try:
            return self._by_name[name]
        except KeyError:
            raise UsageError(f"unknown implementation {name!r}: choose from {', '.join(self._by_name)}") from None

    def server(self, name: str) -> ServerSpec:
        spec = self.get(name).server
        if spec is None:
            raise UsageError(f"{name} has no server: choose a server from {', '.join(self.servers)}")
        return spec

    def client(self, name: str) -> ClientSpec:
        spec = self.get(name).client
        if spec is None:
            raise UsageError(f"{name} has no client: choose a client from {', '.join(self.clients)}")
        return spec

    def check(self, role: str, names: Iterable[str], generations: Iterable[str] = ()) -> list[str]:
        """``names`` deduplicated (``@13``: every implementation of the role on Debian 13), or a
        UsageError naming the unknown one. When empty: every implementation of the role on
        ``generations`` (the default generation when empty)."""
        every = [i.name for i in self.impls if (i.server if role == "server" else i.client) is not None]

        def of(wanted: set[str]) -> list[str]:
            unknown = wanted - set(GENERATIONS)
            if unknown:
                raise UsageError(
                    f"unknown Debian generation {', '.join(sorted(unknown))}: choose from {', '.join(GENERATIONS)}"
                )
            return [name for name in every if self.get(name).generation in wanted]

        chosen: list[str] = []
        for name in names:
            if name.startswith("@"):  # every implementation of the role on that generation
                chosen += of({name[1:]})
                continue
            if name not in every:
                raise UsageError(f"unknown {role} implementation {name!r}: choose from {', '.join(every)}")
            chosen.append(name)
        return list(dict.fromkeys(chosen)) or of(set(generations) or {DEFAULT_GENERATION})

    def images(self) -> dict[str, str]:
        return {i.name: i.image for i in self.impls}

    def wire_view(self, cell: Cell) -> dict[str, bool]:
        """What a capture of ``cell`` can show (judgement.wire_mismatches's keywords): a
        TLS 1.3 handshake is readable only with the client's key log, and a server whose
        CertificateRequest lists no CA names by design is not asked for them."""
        server = self.server(cell.server)
        return {"readable": self.wire_unseen(cell) is None, "ca_names": "ca-names" not in server.lacks}

    def wire_unseen(self, cell: Cell) -> str | None:
        """Why a capture cannot show what ``cell``'s scenario asserts on the wire, or None:
        a TLS 1.3 handshake without the client's key log (``keylog``), or a rejected one
        of a client that has its key log only for handshakes it completes
        (``keylog-on-failure``); or a TLS 1.2 renegotiation (``--auth-path``)."""
        if cell.tls == "1.2" and cell.scenario.server.auth_path:
            # The renegotiation runs inside the first handshake's encryption. With the key
            # log tshark decrypted it in most runs but not in every one (2 cells of 68 in
            # one CI run, cause not established), so it is not asserted.
            return "a TLS 1.2 renegotiation is encrypted under the first handshake's keys and is not always decrypted"
        if cell.tls != "1.3":
            return None
        lacks = self.client(cell.client).lacks
        if "keylog" in lacks:
            return f"{cell.client} client: {lacks['keylog']}"
        rejected = not (cell.expected.verdict == "ok" or cell.expected.verdict.startswith("reported:"))
        if "keylog-on-failure" in lacks and rejected:
            return f"{cell.client} client: {lacks['keylog-on-failure']}"
        return None

    def batches(self) -> dict[str, BatchSpec]:
        """The batch worker each client's manifest declares ([client.batch])."""
        return {i.name: i.client.batch for i in self.impls if i.client is not None and i.client.batch is not None}

    def capabilities(self) -> dict[str, tuple[str, ...]]:
        """The capabilities each server's manifest asks for (only DROPPING_CAPABILITIES)."""
        return {i.name: i.server.capabilities for i in self.impls if i.server is not None and i.server.capabilities}

    # --- cells ---

    def why_unsupported(self, server: str, client: str, scenario: Scenario, tls: str) -> str | None:
        """Why a cell cannot run on these implementations, decided before it runs; None if it can."""
        needs = {
            "server": server_needs(scenario.server, tls),
            "client": [f"tls{tls}", *scenario.client_needs],
        }
        for role, name in (("server", server), ("client", client)):
            spec = self.server(name) if role == "server" else self.client(name)
            for feature in needs[role]:
                if feature in spec.lacks:
                    return f"{name} {role}: {spec.lacks[feature]}"
        return None

    def expectation(self, server: str, client: str, scenario: Scenario, tls: str) -> Expected:
        """The catalogue's default, unless a manifest says where its stack differs (and why).

        A scenario ``like`` another takes that one's expectations where none names it.
        A client's own ``client-error`` comes first: its stack fails on what it was given
        (a key it cannot load or sign with, a message it cannot read), so nothing the server
        would do applies. Then the most specific expectation wins: one naming its peer
        before one that does not, the server's before the client's.
        """
        expected = self._chosen(server, client, scenario, tls)
        named = self.races(server, client, scenario.id, tls)
        if not named and scenario.like:
            named = self.races(server, client, scenario.like, tls)
        races = tuple(r for r in named if r.holds_for(expected.verdict))
        if not races:
            return expected
        also = tuple(
            dict.fromkeys(v for v in (*expected.also, *(a for r in races for a in r.also)) if v != expected.verdict)
        )
        return replace(expected, also=also, races=races)

    def _chosen(self, server: str, client: str, scenario: Scenario, tls: str) -> Expected:
        candidates = self._candidates(server, client, scenario.id, tls)
        if not candidates and scenario.like:
            candidates = self._candidates(server, client, scenario.like, tls)
        if candidates:
            chosen = sorted(candidates, key=_precedence)[0]
            by = server if chosen.role == "server" else client
            return Expected(
                chosen.verdict,
                chosen.native,
                chosen.rule,
                chosen.source,
                chosen.wire,
                by,
                chosen.also,
                by_role=chosen.role,
            )
        verdict, reason = scenario.default(tls)
        native = None
        names = self.server(server).native_names
        if names is not None:
            native = scenario.native.get(names)
        return Expected(verdict, native, reason, "")

    def races(self, server: str, client: str, scenario: str, tls: str) -> list[Race]:
        """The [[race]] entries of the server's manifest (as server) and the client's (as
        client) that name this cell, whatever its expected verdict."""
        found = [r for r in self.get(server).races if r.role == "server" and r.matches(scenario, tls, client)]
        found += [r for r in self.get(client).races if r.role == "client" and r.matches(scenario, tls, server)]
        return found

    def _candidates(self, server: str, client: str, scenario: str, tls: str) -> list[Expectation]:
        found = [e for e in self.get(server).expectations if e.role == "server" and e.matches(scenario, tls, client)]
        found += [e for e in self.get(client).expectations if e.role == "client" and e.matches(scenario, tls, server)]
        return found

    def server_command(
        self,
        name: str,
        side: ServerSide,
        tls_max: str | None,
        port: int | None,
        path: PathIn,
        tutorial: bool = False,
    ) -> tuple[tuple[str, ...], str | None]:
        """(argv, workdir) of the server for ``side``; ``tutorial`` picks the tutorial's own command line."""
        spec = self.server(name)
        template = spec.tutorial_argv if tutorial and spec.tutorial_argv else spec.argv
        values: dict[str, str | bool | None] = {
            "cert": path(side.cert),
            "key": path(side.key),
            "root_ca": path(side.root_ca) if side.root_ca else None,
            "require": side.require,
            "crl": path(side.crl) if side.crl else None,
            "ca_names": side.ca_names if side.ca_names in (None, NO_CA_NAMES) else path(side.ca_names),
            "auth_path": side.auth_path,
            "tls_max": tls_max,
            "port": str(port) if port not in (None, DEFAULT_PORT) else None,
        }
        return template.render(values), spec.workdir

    def client_command(
        self, name: str, side: ClientSide, url: str | None, path: PathIn, tutorial: bool = False
    ) -> tuple[tuple[str, ...], str | None]:
        """(argv, workdir) of the client for ``side`` calling ``url``."""
        spec = self.client(name)
        template = spec.tutorial_argv if tutorial and spec.tutorial_argv else spec.argv
        values: dict[str, str | bool | None] = {
            "cert": path(side.cert) if side.cert else None,
            "key": path(side.key) if side.key else None,
            "root_ca": path(side.root_ca) if side.root_ca else None,
            "url": url,
        }
        return template.render(values), spec.workdir


def discover(folder: Path) -> list[Path]:
    """Every ``*/impl.toml`` under ``folder``, and ``*/*/impl.toml`` (the variants of a
    family that share one folder's programs), in path order."""
    return sorted([*folder.glob(f"*/{MANIFEST}"), *folder.glob(f"*/*/{MANIFEST}")])


def load(extra: Iterable[Path] = (), folder: Path | None = None) -> Registry:
    """The shipped implementations plus ``extra`` (folders holding a manifest, or manifests)."""
    impls = [impl for path in discover(folder or images_dir()) for impl in load_generations(path)]
    for given in extra:
        path = given / MANIFEST if given.is_dir() else given
        if not path.is_file():
            raise UsageError(f"--impl {given}: no {MANIFEST} there (an implementation folder holds its manifest)")
        impls += load_generations(path.resolve(), builtin=False)
    return Registry(tuple(impls))


@cache
def default() -> Registry:
    """The shipped implementations, loaded once."""
    return load()
