"""From a cell's evidence to one normalized verdict (SPEC §8).

Verdicts: ``ok`` · ``reported:<REASON>`` · ``server-rejected:<alert|closed>`` ·
``client-rejected:<untrusted|hostname|expired|not-yet-valid|purpose|other>`` ·
``client-error:<cause>`` · ``unsupported`` · ``timeout`` · ``harness-error:<cause>``.

Pure functions: they read what the client printed (exit status, stdout, stderr) and,
when a capture exists, the alerts seen on the wire. Native errors are mapped per client:

* curl: its exit status and its ``curl: (N) message`` line;
* Node (axios): the ``Error Code:`` line, Node's codes (``ERR_SSL_*``, X509 names,
  ``ECONNRESET``);
* Python (requests): the same ``Error Code:`` convention (see images/python).

Races the spec names do not change a verdict: under TLS 1.3 a server's rejection
reaches curl after the handshake as exit 56, 55 or 52, and Python sees an alert or an
EOF; the alert, when any output names it, decides, and a wire alert beats them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

TIMEOUT_EXITS = {124, 137}
UNSUPPORTED_EXIT = 127

#: X509_V_ERR names a client gives when it rejects the server's chain.
UNTRUSTED = {
    "UNABLE_TO_GET_ISSUER_CERT",
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "CERT_UNTRUSTED",
    "CERT_SIGNATURE_FAILURE",
}
CLIENT_REJECTED_BY_CODE = {
    **{code: "untrusted" for code in UNTRUSTED},
    "CERT_HAS_EXPIRED": "expired",
    "CERT_NOT_YET_VALID": "not-yet-valid",
    "INVALID_PURPOSE": "purpose",
    "HOSTNAME_MISMATCH": "hostname",
    "IP_ADDRESS_MISMATCH": "hostname",
    "ERR_TLS_CERT_ALTNAME_INVALID": "hostname",
}
#: OpenSSL's verify messages (X509_verify_cert_error_string), as curl prints them.
CLIENT_REJECTED_BY_MESSAGE = (
    ("unable to get local issuer certificate", "untrusted"),
    ("unable to get issuer certificate", "untrusted"),
    ("unable to verify the first certificate", "untrusted"),
    ("self-signed certificate", "untrusted"),
    ("self signed certificate", "untrusted"),
    ("certificate has expired", "expired"),
    ("certificate is not yet valid", "not-yet-valid"),
    ("unsupported certificate purpose", "purpose"),
    ("unsuitable certificate purpose", "purpose"),
    ("no alternative certificate subject name matches", "hostname"),
    ("does not match target host name", "hostname"),
    ("hostname mismatch", "hostname"),
)
#: A peer that went away: reset, EOF, an empty reply.
CLOSED_CODES = {"ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_SSL_UNEXPECTED_EOF_WHILE_READING"}
CLOSED_MESSAGES = (
    "connection reset by peer",
    "unexpected eof",
    "socket hang up",
    "empty reply from server",
    "connection was reset",
    "broken pipe",
    "failure when receiving data from the peer",
    "failed sending data to the peer",
    "eof occurred in violation of protocol",
    "remote end closed connection",
    "connection aborted",
)
#: curl's OpenSSL backend (lib/vtls/openssl.c, ossl_connect_step2) turns a received
#: certificate_expired alert into CURLE_PEER_FAILED_VERIFICATION (60); when its own
#: verify of the server succeeded, the message is exactly this sentence and nothing
#: else, so it names the server's alert, not a problem with the server's certificate.
CURL_ALERT_EXPIRED = "SSL certificate verification failed"
KEY_MISMATCH_CODES = {"ERR_OSSL_X509_KEY_VALUES_MISMATCH"}

_ALERT_IN_CODE = re.compile(r"ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)")
_ALERT_IN_TEXT = re.compile(r"(?:sslv3|tlsv1|tlsv13) alert ([a-z ]+?)(?:[,:)'\n]| \(|$)", re.IGNORECASE | re.MULTILINE)
_CURL_ERROR = re.compile(r"^curl: \((\d+)\) (.*)$", re.MULTILINE)
_ERROR_CODE = re.compile(r"^\s*Error Code: (\S+)\s*$", re.MULTILINE)
_ERROR_MESSAGE = re.compile(r"^Error Message: (.*)$", re.MULTILINE)
_NODE_INSPECT_KEY = re.compile(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:")


@dataclass(frozen=True)
class Evidence:
    """What one cell left behind, as plain text."""

    client: str
    exit_code: int
    stdout: str
    stderr: str
    wire_alerts: Sequence[tuple[str, str]] = ()  # (sender, description) seen on the wire

    def last_lines(self, text: str, count: int = 6) -> str:
        return "\n".join(text.rstrip().splitlines()[-count:])


def alert_name(text: str) -> str:
    """``tlsv1 alert unknown ca`` -> ``unknown_ca``."""
    return "_".join(text.strip().lower().split())


def parse_body(client: str, stdout: str) -> object | None:
    """The JSON body a client printed, whatever its output form, or None."""
    text = stdout.strip()
    if client == "node":
        if text.startswith("Response: "):
            text = text[len("Response: ") :]
        elif text.startswith("{") and not text.startswith('{"'):
            # Node's util.inspect form: { mTLSValid: false, reason: 'X' }
            text = _NODE_INSPECT_KEY.sub(r'\1"\2":', text).replace("'", '"')
    try:
        body: object = json.loads(text)
    except ValueError:
        return None
    return body


def verdict_from_body(body: object) -> str | None:
    if not isinstance(body, dict):
        return None
    if body.get("mTLSValid") is True or body.get("success") is True:
        return "ok"
    if body.get("mTLSValid") is False and isinstance(body.get("reason"), str):
        return f"reported:{body['reason']}"
    return None


def _from_error(code: str, message: str) -> str | None:
    """Shared mapping of a native error code and message to a verdict."""
    match = _ALERT_IN_CODE.search(code)
    if match:
        return f"server-rejected:{match.group(1).lower()}"
    match = _ALERT_IN_TEXT.search(message)
    if match:
        return f"server-rejected:{alert_name(match.group(1))}"
    if code in CLIENT_REJECTED_BY_CODE:
        return f"client-rejected:{CLIENT_REJECTED_BY_CODE[code]}"
    lowered = message.lower()
    for needle, kind in CLIENT_REJECTED_BY_MESSAGE:
        if needle in lowered:
            return f"client-rejected:{kind}"
    if code in KEY_MISMATCH_CODES or "key values mismatch" in lowered:
        return "client-error:key-mismatch"
    if code in CLOSED_CODES or any(needle in lowered for needle in CLOSED_MESSAGES):
        return "server-rejected:closed"
    if code == "ECONNREFUSED" or "connection refused" in lowered:
        return "client-error:connection-refused"
    if code == "ETIMEDOUT":
        return "timeout"
    return None


def curl_verdict(exit_code: int, stderr: str) -> str:
    errors = _CURL_ERROR.findall(stderr)
    status, message = (int(errors[-1][0]), errors[-1][1]) if errors else (exit_code, "")
    if status == 58:
        if "private key" in message:
            return "client-error:key-mismatch"
        return "client-error:bad-client-cert"
    if status == 28:
        return "timeout"
    if status == 7:
        return "client-error:connection-refused"
    if status == 60 and message.strip() == CURL_ALERT_EXPIRED:
        return "server-rejected:certificate_expired"
    if status == 60:
        mapped = _from_error("", message)
        return mapped if mapped and mapped.startswith("client-rejected") else "client-rejected:other"
    if status in (35, 52, 55, 56):
        mapped = _from_error("", message)
        if mapped and mapped.startswith("server-rejected"):
            return mapped
        if status == 52:
            return "server-rejected:closed"
        return mapped or "server-rejected:closed"
    mapped = _from_error("", message)
    return mapped or f"client-error:curl-{status}"


def coded_verdict(stderr: str) -> str:
    """Node and Python clients: ``   Error Code: X`` / ``Error Message: Y`` on stderr."""
    codes = _ERROR_CODE.findall(stderr)
    messages = _ERROR_MESSAGE.findall(stderr)
    code = codes[-1] if codes else ""
    message = messages[-1] if messages else stderr
    mapped = _from_error(code, message)
    if mapped:
        return mapped
    return f"client-error:{code.lower() or 'unknown'}"


def decide(evidence: Evidence) -> str:
    """The one verdict for ``evidence``."""
    if evidence.exit_code in TIMEOUT_EXITS:
        return "timeout"
    if evidence.exit_code == UNSUPPORTED_EXIT:
        return "unsupported"
    if evidence.exit_code == 0:
        verdict = verdict_from_body(parse_body(evidence.client, evidence.stdout))
        return verdict or "harness-error:unparsable-body"
    if evidence.client == "curl":
        verdict = curl_verdict(evidence.exit_code, evidence.stderr)
    elif evidence.client in ("node", "python"):
        verdict = coded_verdict(evidence.stderr)
    else:
        return f"harness-error:unknown-client-{evidence.client}"
    # A wire alert from the server is the most direct evidence of why it rejected.
    server_alerts = [desc for sender, desc in evidence.wire_alerts if sender == "server"]
    if server_alerts and verdict.startswith("server-rejected"):
        return f"server-rejected:{alert_name(server_alerts[0])}"
    return verdict
