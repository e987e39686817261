"""Ordered rule tables: a stack's native words -> a verdict (SPEC §6, §8).

A rule is a set of conditions and a verdict; a table is a list of rules, and the first
rule whose conditions all hold decides (BoringSSL's runner calls this an ErrorMap).
Conditions are Python regular expressions searched in named text fields (``code``,
``message``, ``stderr``, ``stdout`` of a client; ``reason`` and ``log`` of a server)
plus, for clients, ``exit``: a list of exit statuses. A named group ``alert`` fills
``{alert}`` in the verdict, normalised to the RFC name (``unknown ca`` -> ``unknown_ca``);
``{code}`` is the code field in lower case.

A rule may instead be ``{ include = "FILE.TABLE" }``: the rules of table ``TABLE`` in
``harness/rulesets/FILE.toml``, shared by every stack that uses the same library (the
OpenSSL verify names and messages live there once). Conditions written beside an
``include`` are added to each included rule, so a stack can apply a shared table only
under its own exit status.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import UsageError

RULESETS_DIR = Path(__file__).resolve().parent / "rulesets"
TEXT_FIELDS = ("code", "message", "stderr", "stdout", "reason", "log", "body")
KNOWN_KEYS = {*TEXT_FIELDS, "exit", "verdict", "include", "note"}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class ManifestError(UsageError):
    """A manifest or rule table that cannot be used: one line naming the file and the rule."""


def alert_name(text: str) -> str:
    """``tlsv1 alert unknown ca`` -> ``unknown_ca``; ``BadCertificate`` -> ``bad_certificate``."""
    text = text.strip()
    if " " not in text and "_" not in text and re.search(r"[a-z][A-Z]", text):
        text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return "_".join(text.lower().replace("-", " ").split())


@dataclass(frozen=True)
class Rule:
    """One row of a table: every condition must hold; ``origin`` says where it was written."""

    verdict: str
    conditions: tuple[tuple[str, re.Pattern[str]], ...]
    exits: frozenset[int] | None
    origin: str

    def match(self, fields: Mapping[str, str], exit_code: int | None = None) -> str | None:
        """The verdict when every condition holds, with its placeholders filled; else None."""
        if self.exits is not None and exit_code not in self.exits:
            return None
        groups: dict[str, str] = {}
        for name, pattern in self.conditions:
            found = pattern.search(fields.get(name, ""))
            if found is None:
                return None
            groups.update({k: v for k, v in found.groupdict().items() if v is not None})
        values = {"code": fields.get("code", "").lower(), **groups}
        if "alert" in values:
            values["alert"] = alert_name(values["alert"])
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self.verdict)


@dataclass(frozen=True)
class Table:
    """An ordered rule table; ``decide`` returns the first match and the rule that made it."""

    rules: tuple[Rule, ...]

    def decide(self, fields: Mapping[str, str], exit_code: int | None = None) -> tuple[str, Rule] | None:
        for rule in self.rules:
            verdict = rule.match(fields, exit_code)
            if verdict is not None:
                return verdict, rule
        return None


def _compile(origin: str, key: str, value: object) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ManifestError(f"{origin}: {key} must be a regular expression string, got {value!r}")
    try:
        return re.compile(value, re.MULTILINE)
    except re.error as exc:
        raise ManifestError(f"{origin}: {key} = {value!r} is not a valid regular expression ({exc})") from exc


def _exits(origin: str, value: object) -> frozenset[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ManifestError(f"{origin}: exit must be an integer or a list of integers, got {value!r}")
    return frozenset(v for v in values if isinstance(v, int))


def parse_table(
    entries: object,
    origin: str,
    fields: Iterable[str] = TEXT_FIELDS,
    extra: Sequence[tuple[str, re.Pattern[str]]] = (),
    extra_exits: frozenset[int] | None = None,
    seen: tuple[str, ...] = (),
) -> Table:
    """A table from its TOML form (a list of tables), includes expanded in place."""
    allowed = set(fields)
    if entries is None:
        return Table(())
    if not isinstance(entries, list):
        raise ManifestError(f"{origin}: expected a list of rules ([[...]] tables)")
    rules: list[Rule] = []
    for index, entry in enumerate(entries):
        where = f"{origin}[{index}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: a rule is a table, got {entry!r}")
        unknown = set(entry) - KNOWN_KEYS
        if unknown:
            raise ManifestError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        conditions = list(extra)
        for key in TEXT_FIELDS:
            if key in entry:
                if key not in allowed:
                    raise ManifestError(f"{where}: {key} is not a field of this table (use {', '.join(fields)})")
                conditions.append((key, _compile(where, key, entry[key])))
        exits = extra_exits
        if "exit" in entry:
            own = _exits(where, entry["exit"])
            exits = own if exits is None else exits & own
        if "include" in entry:
            if "verdict" in entry:
                raise ManifestError(f"{where}: a rule has either include or verdict, not both")
            name = entry["include"]
            if not isinstance(name, str):
                raise ManifestError(f"{where}: include must be a string like 'openssl.errors'")
            if name in seen:
                raise ManifestError(f"{where}: include {name!r} includes itself")
            included = ruleset(name, fields, tuple(conditions), exits, (*seen, name))
            rules.extend(included.rules)
            continue
        verdict = entry.get("verdict")
        if not isinstance(verdict, str) or not verdict:
            raise ManifestError(f"{where}: a rule needs a verdict (or an include)")
        check_verdict(verdict, where)
        rules.append(Rule(verdict, tuple(conditions), exits, where))
    return Table(tuple(rules))


@cache
def _ruleset_file(file: str) -> dict[str, Any]:
    path = RULESETS_DIR / f"{file}.toml"
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"no shared rule set {file!r} (looked for {path})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: {exc}") from exc


def ruleset(
    name: str,
    fields: Iterable[str] = TEXT_FIELDS,
    extra: tuple[tuple[str, re.Pattern[str]], ...] = (),
    extra_exits: frozenset[int] | None = None,
    seen: tuple[str, ...] = (),
) -> Table:
    """The shared table ``FILE.TABLE`` (harness/rulesets/FILE.toml, its ``[[TABLE]]`` list)."""
    file, _, table = name.partition(".")
    document = _ruleset_file(file)
    if not table or table not in document:
        tables = ", ".join(f"{file}.{t}" for t in document)
        raise ManifestError(f"no shared rule table {name!r}: {file}.toml has {tables}")
    return parse_table(document[table], f"rulesets/{file}.toml {table}", fields, extra, extra_exits, seen)


# --- the verdict vocabulary (SPEC §8) ---------------------------------------------------

REPORTED_CLASSES = (
    "no-cert",
    "untrusted",
    "invalid-ca",
    "expired",
    "not-yet-valid",
    "purpose",
    "revoked",
    "no-crl",
    "weak",
    "bad-signature",
    "other",
)
CLIENT_REJECTED_CLASSES = ("untrusted", "hostname", "expired", "not-yet-valid", "purpose", "weak", "other")
_VERDICT = re.compile(
    r"^(ok|unsupported|timeout"
    r"|reported:(?P<reported>[a-z-]+|\{\w+\})"
    r"|server-rejected:(?P<alert>[a-z0-9_]+|closed|http-(?:\d{3}|\{\w+\})|\{\w+\})"
    r"|client-rejected:(?P<client>[a-z-]+|\{\w+\})"
    r"|client-error:[\w.{}-]+"
    r"|harness-error:.+)$"
)


def check_verdict(verdict: str, origin: str) -> None:
    """A verdict of SPEC §8's vocabulary, or a ManifestError naming where it was written."""
    found = _VERDICT.match(verdict)
    problem = found is None
    if found is not None:
        reported, client = found.group("reported"), found.group("client")
        if reported and not reported.startswith("{") and reported not in REPORTED_CLASSES:
            problem = True
        if client and not client.startswith("{") and client not in CLIENT_REJECTED_CLASSES:
            problem = True
    if problem:
        raise ManifestError(
            f"{origin}: {verdict!r} is not a verdict of SPEC §8 (reported:<{'|'.join(REPORTED_CLASSES)}>, "
            f"server-rejected:<alert|closed|http-N>, client-rejected:<{'|'.join(CLIENT_REJECTED_CLASSES)}>, "
            "client-error:<cause>, ok, unsupported, timeout)"
        )
