"""The contract's server options and the manifest features, declared once (SPEC §13).

A server option is one row of ``SERVER_OPTIONS``: the scenario field that sets it (also
the argv placeholder), the contract's flag and its value, and the manifest features a
cell needs when the option is given (``FEATURE_RULES``). From these come the placeholders
a manifest's argv may use, the contract's default argv, its usage line, what a cell needs
of its server (``server_needs``, which ``Registry.why_unsupported`` asks), and what the
admission check sends to see a declared-unsupported feature exit 127. images/CONTRACT.md
and images/MANIFEST.md quote the usage line, the placeholders and the default argv;
tests/test_features.py holds them to this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.scenarios import CLIENT_ROOT, CRLS, NO_CA_NAMES, SECURE_PATH, UNRELATED_CA, ServerSide


@dataclass(frozen=True)
class ServerOption:
    """One flag of ``server-mtls``."""

    field: str  # the ServerSide field, and the {placeholder} of a manifest's argv
    flag: str
    value: str  # what follows the flag in the usage line ("" for a switch)
    required: bool = False  # given to every server (the others only when the cell sets them)
    summary: str = ""

    @property
    def usage(self) -> str:
        text = f"{self.flag} {self.value}".strip()
        return text if self.required else f"[{text}]"


#: In the usage line's order (images/CONTRACT.md), which is also the default argv's.
SERVER_OPTIONS = (
    ServerOption("cert", "--cert", "FILE", True, "the certificate chain to present, leaf first"),
    ServerOption("key", "--key", "FILE", True, "its key"),
    ServerOption("root_ca", "--root-ca", "FILE", summary="the CA(s) client certificates must chain to"),
    ServerOption("require", "--require", "", summary="reject at the handshake instead of reporting"),
    ServerOption("tls_max", "--tls-max", "1.2|1.3", summary="the highest TLS version (the cell's)"),
    ServerOption("crl", "--crl", "FILE", summary="PEM CRLs, one per CA of the client chain"),
    ServerOption("ca_names", "--ca-names", "FILE|none", summary="the names the CertificateRequest lists"),
    ServerOption("auth_path", "--auth-path", "PATH", summary="ask for the certificate only on this path"),
    ServerOption("port", "--port", "N", summary="where to listen"),
)
#: Placeholders a server's argv template may use; a client's: what it presents and the URL.
SERVER_VALUES = tuple(option.field for option in SERVER_OPTIONS)
CLIENT_VALUES = ("cert", "key", "root_ca", "url")


@dataclass(frozen=True)
class FeatureRule:
    """A manifest feature a cell needs of its server, from one option and the TLS version.

    ``asks`` is the value the admission check gives the option to see the server exit 127
    when its manifest declares the feature unsupported (SPEC §13)."""

    feature: str
    field: str  # "" for the TLS version alone
    when: Callable[[Any], bool]
    asks: Any
    tls: str | None = None  # only in this TLS version
    summary: str = ""


def _given(value: Any) -> bool:
    return value is not None


#: Every feature a server option can need, in the order ``server_needs`` asks for them.
FEATURE_RULES = (
    FeatureRule("tls1.2", "", lambda _: True, None, "1.2", "the cell runs TLS 1.2 (`--tls-max 1.2`)"),
    FeatureRule("tls1.3", "", lambda _: True, None, "1.3", "the cell runs TLS 1.3 (`--tls-max 1.3`)"),
    FeatureRule("require", "require", bool, True, summary="the server is started with `--require` (require mode)"),
    FeatureRule(
        "report",
        "require",
        lambda value: not value,
        False,
        summary="the server is started without `--require` (report mode)",
    ),
    FeatureRule("crl", "crl", _given, CRLS, summary="the server is given `--crl FILE`"),
    FeatureRule(
        "set-ca-names",
        "ca_names",
        lambda value: value is not None and value != NO_CA_NAMES,
        UNRELATED_CA,
        summary="the server is given `--ca-names FILE`: list other names than the trusted CAs'",
    ),
    FeatureRule(
        "no-ca-names",
        "ca_names",
        lambda value: value == NO_CA_NAMES,
        NO_CA_NAMES,
        summary="the server is given `--ca-names none`: list no names at all",
    ),
    FeatureRule(
        "renegotiation",
        "auth_path",
        _given,
        SECURE_PATH,
        "1.2",
        "the server is given `--auth-path` in TLS 1.2: ask for the certificate by renegotiating",
    ),
    FeatureRule(
        "post-handshake-auth",
        "auth_path",
        _given,
        SECURE_PATH,
        "1.3",
        "the server is given `--auth-path` in TLS 1.3: ask for it after the handshake",
    ),
)

#: Features no server option asks for: a client's (a scenario's ``client_needs``), or facts
#: about a stack that change only what the capture asserts.
OTHER_FEATURES = {
    "hostname-check": "a client checks the server certificate's names against the host it asked for "
    "(the scenarios that need it say so: `Scenario.client_needs`)",
    "keylog": "a client writes SSLKEYLOGFILE; without it its TLS 1.3 handshakes cannot be read, "
    "and their wire is not asserted",
    "keylog-on-failure": "a client writes its key log also for a handshake that fails",
    "ca-names": "a server's CertificateRequest names the CAs it trusts; without it the names are not asked of it",
}

#: Every feature a manifest's ``unsupported`` table may name.
FEATURES = tuple(dict.fromkeys([*(rule.feature for rule in FEATURE_RULES), *OTHER_FEATURES]))


def server_needs(side: ServerSide, tls: str) -> list[str]:
    """The features a server started with ``side`` for a TLS ``tls`` cell needs."""
    return [
        rule.feature
        for rule in FEATURE_RULES
        if (rule.tls is None or rule.tls == tls) and (not rule.field or rule.when(getattr(side, rule.field)))
    ]


def admission_ask(feature: str) -> tuple[ServerSide, str | None] | None:
    """The server side and TLS version that ask for ``feature`` (None: no option asks for it)."""
    rule = next((r for r in FEATURE_RULES if r.feature == feature), None)
    if rule is None:
        return None
    values = {rule.field: rule.asks} if rule.field else {}
    return ServerSide(root_ca=CLIENT_ROOT, **values), rule.tls


def contract_server_argv() -> list[Any]:
    """The contract's server command as an argv template (a manifest without ``argv``)."""
    argv: list[Any] = ["server-mtls"]
    for option in SERVER_OPTIONS:
        words = [option.flag] + ([f"{{{option.field}}}"] if option.value else [])
        argv += words if option.required else [{"if": option.field, "argv": words}]
    return argv


def server_usage() -> str:
    """The usage line every server program prints (images/CONTRACT.md)."""
    return "usage: server-mtls " + " ".join(option.usage for option in SERVER_OPTIONS)


def contract_template() -> str:
    """The default server argv as MANIFEST.md writes it: the placeholders, groups in brackets."""
    words = []
    for option in SERVER_OPTIONS:
        words.append(f"{option.flag} {{{option.field}}}" if option.required else f"[{option.flag}]")
    return "server-mtls " + " ".join(words)


def options_table() -> str:
    """images/CONTRACT.md's table of server options, from ``SERVER_OPTIONS`` and ``FEATURE_RULES``."""
    rows = ["| flag | placeholder | needs the manifest feature | what it asks |", "|---|---|---|---|"]
    for option in SERVER_OPTIONS:
        rules = [r for r in FEATURE_RULES if r.field == option.field]
        needs = ", ".join(f"`{r.feature}`" + (f" (TLS {r.tls})" if r.tls else "") for r in rules) or "—"
        flag = _cell(option.usage.strip("[]"))
        rows.append(f"| `{flag}` | `{{{option.field}}}` | {needs} | {_cell(option.summary)} |")
    return "\n".join(rows)


def features_table() -> str:
    """images/MANIFEST.md's table of the features an ``unsupported`` table may name."""
    rows = ["| feature | needed when | option |", "|---|---|---|"]
    for rule in FEATURE_RULES:
        option = f"`{{{rule.field}}}`" if rule.field else "`{tls_max}`"
        rows.append(f"| `{rule.feature}` | {_cell(rule.summary)} | {option} |")
    for feature, summary in OTHER_FEATURES.items():
        rows.append(f"| `{feature}` | {_cell(summary)} | — |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """Text for a markdown table cell: its pipes escaped."""
    return text.replace("|", "\\|")


#: The generated blocks of the docs: (file under images/, marker name, text).
def generated_blocks() -> list[tuple[str, str, str]]:
    return [
        ("CONTRACT.md", "server options", options_table()),
        ("MANIFEST.md", "features", features_table()),
    ]


def block(name: str, text: str) -> str:
    return f"<!-- {name}: generated by `python -m harness.features --write` -->\n{text}\n<!-- end of {name} -->"


def main(argv: list[str] | None = None) -> int:
    """Print the generated blocks, or with ``--write`` put them into images/*.md in place."""
    import argparse
    import re
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m harness.features", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the blocks in images/CONTRACT.md and MANIFEST.md")
    args = parser.parse_args(argv)
    images = Path(__file__).resolve().parent.parent / "images"
    for file, name, text in generated_blocks():
        if not args.write:
            print(f"{file}:\n{block(name, text)}\n")
            continue
        path = images / file
        pattern = re.compile(rf"<!-- {re.escape(name)}: generated .*?<!-- end of {re.escape(name)} -->", re.S)
        content = path.read_text()
        found = pattern.search(content)
        if found is None:
            print(f"{path}: no block named {name!r}; add the two marker lines where it belongs")
            return 2
        path.write_text(content[: found.start()] + block(name, text) + content[found.end() :])
        print(f"wrote {path} ({name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
