"""The Python mTLS client (requests): the Node clients' flags and error format.

Prints the response body as received. On failure it prints, on stderr, an error code
named the way Node names it and OpenSSL's message, and exits 1:

* a certificate the client rejected: OpenSSL's X509_V_ERR_* name (``CERT_HAS_EXPIRED``);
* an OpenSSL error of the SSL library: ``ERR_SSL_<REASON>`` (an alert the server sent,
  ``ERR_SSL_TLSV1_ALERT_UNKNOWN_CA``); of another library: ``ERR_OSSL_<LIB>_<REASON>``
  (``ERR_OSSL_X509_KEY_VALUES_MISMATCH``);
* a host name that does not match: ``HOSTNAME_MISMATCH`` (urllib3 1.26 checks it
  itself, so OpenSSL never reports it);
* a connection the server ended (reset, EOF, TLS zero return): ``ECONNRESET``;
* another socket error: its errno name; a time-out: ``ETIMEDOUT``.
"""

from __future__ import annotations

import argparse
import errno
import ssl
import sys
from typing import Iterator, Optional

import requests

import x509_names
from argparsing import ArgParser

TIMEOUT_S = 10.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = ArgParser(prog="request-mtls", description="mTLS client (Python, requests)")
    parser.add_argument("--cert", help="client certificate chain, leaf first (PEM)")
    parser.add_argument("--key", help="client private key (PEM)")
    parser.add_argument("--root-ca", dest="root_ca", help="CA the server must chain to")
    parser.add_argument("--url", default="https://localhost:9443", help="URL (default https://localhost:9443)")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        missing = "--key" if args.key is None else "--cert"
        sys.stderr.write(f"request-mtls: missing required option {missing}\n")
        sys.exit(1)
    return args


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (urllib3 keeps the cause in ``args``), recursively."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [a for a in current.args if isinstance(a, BaseException)]
        nested += [getattr(current, "reason", None)]  # type: ignore[list-item]
        nested += [current.__cause__, current.__context__]  # type: ignore[list-item]
        todo.extend(n for n in nested if isinstance(n, BaseException))


def error_code(exc: BaseException) -> tuple[str, str]:
    """(code, message) for the most specific cause of a failed request."""
    chain = list(causes(exc))
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return x509_names.name(cause.verify_code), str(cause.verify_message)
    for cause in chain:
        # urllib3 1.26 matches the host name itself and raises its own CertificateError.
        if type(cause).__name__ == "CertificateError":
            return "HOSTNAME_MISMATCH", str(cause)
    for cause in chain:
        if isinstance(cause, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
            return "ECONNRESET", str(cause)
    for cause in chain:
        if isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None):
            library = getattr(cause, "library", None) or "SSL"
            prefix = "ERR_SSL_" if library == "SSL" else f"ERR_OSSL_{library}_"
            return prefix + str(cause.reason), str(cause)
    for cause in chain:
        if isinstance(cause, (requests.exceptions.Timeout, TimeoutError)):
            return "ETIMEDOUT", str(cause)
    for cause in chain:
        # An SSLError's errno is OpenSSL's SSL_ERROR_* number, not a POSIX errno.
        if isinstance(cause, OSError) and not isinstance(cause, ssl.SSLError) and cause.errno:
            return errno.errorcode.get(cause.errno, str(cause.errno)), str(cause)
    for cause in chain:
        if isinstance(cause, requests.exceptions.ConnectionError) and "RemoteDisconnected" in str(cause):
            return "ECONNRESET", str(cause)
    return type(exc).__name__, str(exc)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cert = (args.cert, args.key) if args.cert else None
    try:
        response = requests.get(args.url, cert=cert, verify=args.root_ca or True, timeout=TIMEOUT_S)
    except (requests.exceptions.RequestException, ssl.SSLError, OSError) as exc:
        code, message = error_code(exc)
        sys.stderr.write(f"   Error Code: {code}\nError Message: {message}\n")
        return 1
    sys.stdout.write(response.text)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
