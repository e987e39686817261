"""From a cell's evidence to one normalized verdict and the stack's own words (SPEC §8).

Verdicts: ``ok`` · ``reported:<class>`` · ``server-rejected:<alert|closed|http-N>`` ·
``client-rejected:<class>`` · ``client-error:<cause>`` · ``unsupported`` · ``timeout`` ·
``harness-error:<cause>``; beside each, ``native``: what the stack itself said (the
server's reported reason, the client's error code and message).

Pure functions, the same for every stack: the stack-specific knowledge is data, the
error maps of the manifests (harness.registry, harness.rules). A report-mode body is
classed by the *server's* reason table (its words, and its log line for the cell); a
failed client by the *client's* error table. Generic before both: the exit statuses of
``timeout`` (124, 137) and of "unsupported" (127, images/CONTRACT.md).

Races the spec names do not change a verdict: under TLS 1.3 a server's rejection
reaches curl after the handshake as exit 56, 55 or 52, and Python sees an alert or an
EOF; the error maps read the alert wherever the output names it, and an alert seen on
the wire beats them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.registry import ClientSpec, ServerSpec
from harness.rules import alert_name

TIMEOUT_EXITS = {124, 137}
UNSUPPORTED_EXIT = 127

#: A JavaScript object literal's tokens: quoted strings (either quote) and bare keys.
_JS_TOKEN = re.compile(r"""'((?:[^'\\]|\\.)*)'|("(?:[^"\\]|\\.)*")|([{,]\s*)([A-Za-z_$][\w$]*)(\s*:)""")


@dataclass(frozen=True)
class Evidence:
    """What one cell left behind, as plain text."""

    exit_code: int
    stdout: str
    stderr: str
    server_log: str = ""
    wire_alerts: Sequence[tuple[str, str]] = ()  # (sender, description) seen on the wire


@dataclass(frozen=True)
class Decision:
    verdict: str
    native: str = ""
    rule: str = ""  # where the deciding rule was written (manifest or rule set, and its index)


def _js_to_json(found: re.Match[str]) -> str:
    single, double, before, key, colon = found.groups()
    if single is not None:  # 'it\'s' -> "it's"
        return json.dumps(re.sub(r"\\(.)", r"\1", single))
    if double is not None:
        return double
    return f'{before}"{key}"{colon}'


def parse_body(stdout: str, prefixes: Sequence[str] = ()) -> object | None:
    """The JSON body a client printed, whatever its output form, or None.

    ``prefixes`` are the client's own decorations (Node's ``request.js`` prints
    ``Response: <JSON>``); a JavaScript object literal (Node's ``console.log`` of a parsed
    body: ``{ mTLSValid: false, reason: 'X' }``) is read as JSON.
    """
    text = stdout.strip()
    for prefix in prefixes:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    try:
        body: object = json.loads(text)
    except ValueError:
        if not text.startswith("{"):
            return None
        try:
            body = json.loads(_JS_TOKEN.sub(_js_to_json, text))
        except ValueError:
            return None
    return body


def from_body(body: object, server: ServerSpec, server_log: str, raw: str = "") -> Decision:
    """The verdict of a report-mode body, classed by the server's reason table.

    A response that is not the contract's JSON (a web server's own error page, such as
    nginx's 400 for a certificate it refused) is classed by the server's ``responses``
    table, on the raw text the client printed.
    """
    if not isinstance(body, dict):
        found = server.responses.decide({"body": raw, "log": server_log})
        if found is not None:
            words = " ".join(re.sub(r"<[^>]+>", " ", raw).split())  # the page's text, tags removed
            return Decision(found[0], words[:160], found[1].origin)
        return Decision("harness-error:unparsable-body")
    if body.get("mTLSValid") is True or body.get("success") is True:
        return Decision("ok")
    reason = body.get("reason")
    if body.get("mTLSValid") is False and isinstance(reason, str):
        found = server.reasons.decide({"reason": reason, "log": server_log})
        if found is None:
            return Decision("harness-error:unmapped-reason", reason)
        return Decision(found[0], reason, found[1].origin)
    return Decision("harness-error:unparsable-body")


def _last(pattern: re.Pattern[str], text: str) -> str:
    found = pattern.findall(text)
    if not found:
        return ""
    last = found[-1]
    return str(last[0] if isinstance(last, tuple) else last).strip()


def from_error(evidence: Evidence, client: ClientSpec) -> Decision:
    """The verdict of a failed client, by its error table; its code and message are the native words."""
    code = _last(client.code, evidence.stderr)
    message = _last(client.message, evidence.stderr) or evidence.stderr.strip()
    native = f"{code}: {message}" if code else message
    fields = {"code": code, "message": message, "stderr": evidence.stderr, "stdout": evidence.stdout}
    found = client.errors.decide(fields, evidence.exit_code)
    if found is None:
        return Decision("client-error:unmapped", native)
    return Decision(found[0], native, found[1].origin)


def decide(evidence: Evidence, client: ClientSpec, server: ServerSpec) -> Decision:
    """The one verdict for ``evidence`` of ``client`` against ``server``."""
    if evidence.exit_code in TIMEOUT_EXITS:
        return Decision("timeout", f"exit status {evidence.exit_code}")
    if evidence.exit_code == UNSUPPORTED_EXIT:
        if "not found" in evidence.stderr:
            return Decision("harness-error:client-missing", evidence.stderr.strip()[-200:])
        return Decision("unsupported", evidence.stderr.strip()[-200:])
    if evidence.exit_code == 0:
        body = parse_body(evidence.stdout, client.body_prefixes)
        return from_body(body, server, evidence.server_log, evidence.stdout)
    decision = from_error(evidence, client)
    # A wire alert from the server is the most direct evidence of why it rejected.
    server_alerts = [desc for sender, desc in evidence.wire_alerts if sender == "server"]
    if server_alerts and decision.verdict.startswith("server-rejected"):
        return Decision(f"server-rejected:{alert_name(server_alerts[0])}", decision.native, "the wire")
    return decision
