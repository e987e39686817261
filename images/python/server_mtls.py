"""The Python mTLS server: the Node reference's flags, bodies and reason codes.

Report mode (the default) mirrors Node's ``requestCert: true, rejectUnauthorized:
false``: every handshake completes, the verify callback accepts and records each error,
and the body names the verify result. The result is the *last* error OpenSSL reported,
because that is what ``SSL_get_verify_result`` (which Node reads) holds after a verify
that a callback kept going. When the client sent no certificate the reason is
``UNABLE_TO_GET_ISSUER_CERT``: Node's ``VerifyPeerCertificate`` starts from that code
and only replaces it when a peer certificate exists.

``--require`` mirrors ``rejectUnauthorized: true``: the callback returns OpenSSL's own
verdict and a missing certificate fails the handshake, so OpenSSL sends its alert.

``--auth-path PATH`` (TLS 1.2 only) asks for no certificate in the handshake; a request
for PATH sets the connection's verify mode (``Connection.set_verify``) and renegotiates
(``Connection.renegotiate``, i.e. ``SSL_renegotiate``: a HelloRequest), and the body reports
the certificate of the new handshake. Other paths get the body for "no certificate".
The context keeps pyOpenSSL's defaults (OpenSSL's server session cache and tickets on, no
session id context), so a client that offers its session in the renegotiation meets
OpenSSL's "session id context uninitialized" (images/python/impl.toml, [[expect]]
per-path-client-auth). pyOpenSSL has no API for TLS 1.3 post-handshake authentication, so
TLS 1.3 exits 127.

Each connection has its own thread and one deadline from accept to close (the
handshake, the request and the answer all fit in it; the close is at once), and there
are far more slots than a swarm of stalled peers in the tests takes, so garbage, a
half-open handshake or many slow clients at once never keep the server from answering
the next request: a stalled peer frees its slot when its deadline passes.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import threading
import time
from typing import Callable, Optional, TypeVar

from cryptography import x509
from OpenSSL import SSL, crypto

import x509_names
from argparsing import ArgParser

T = TypeVar("T")

#: From accept to close, whatever the peer does (a trickle of one byte at a time included).
DEADLINE_S = 10.0
MAX_REQUEST = 16384
#: Connections served at once; a thread each. More than any bounded swarm of stalled
#: peers holds (each leaves by its deadline), so a good client finds a slot at once.
MAX_CONNECTIONS = 1024
TLS_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
NO_CERT_REASON = "UNABLE_TO_GET_ISSUER_CERT"
#: Why --auth-path cannot be honoured in TLS 1.3 (exit 127).
PHA_UNSUPPORTED = (
    "--auth-path in TLS 1.3 is not supported: pyOpenSSL 23.0 (Debian bookworm) has no API for TLS 1.3 "
    "post-handshake authentication: no Context or Connection method calls SSL_verify_client_post_handshake or "
    "SSL_CTX_set_post_handshake_auth (https://github.com/pyca/pyopenssl/blob/23.0.0/src/OpenSSL/SSL.py; only "
    "cryptography's private bindings declare them, cryptography 38.0.4 "
    "src/cryptography/hazmat/bindings/openssl/_conditional.py, cryptography_has_tlsv13_functions), and "
    "Connection.renegotiate (python3-openssl 23.0.0-1: /usr/lib/python3/dist-packages/OpenSSL/SSL.py#L2054-L2063) "
    "calls SSL_renegotiate, which TLS 1.3 refuses "
    "(https://github.com/openssl/openssl/blob/openssl-3.0.22/ssl/ssl_lib.c#L2284-L2289)"
)


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = ArgParser(prog="server-mtls", description="mTLS server (Python, pyOpenSSL)")
    parser.add_argument("--cert", help="server certificate chain, leaf first (PEM)")
    parser.add_argument("--key", help="server private key (PEM)")
    parser.add_argument("--root-ca", dest="root_ca", help="CA that client certificates must chain to")
    parser.add_argument("--require", action="store_true", help="reject untrusted clients at the handshake")
    parser.add_argument("--tls-max", dest="tls_max", choices=sorted(TLS_VERSIONS), help="highest TLS version")
    parser.add_argument("--crl", help="PEM file of CRLs; checks the whole chain, as Node does")
    parser.add_argument(
        "--ca-names",
        dest="ca_names",
        metavar="FILE|none",
        help="CAs to name in the CertificateRequest instead of --root-ca's, or none for an empty list",
    )
    parser.add_argument(
        "--auth-path",
        dest="auth_path",
        metavar="PATH",
        help="ask for the client certificate only for a request for PATH (TLS 1.2: renegotiation)",
    )
    parser.add_argument("--port", type=int, default=9443, help="port to listen on (default 9443)")
    args = parser.parse_args(argv)
    if args.auth_path is not None:
        if not args.auth_path.startswith("/"):
            sys.stderr.write(f"server-mtls: --auth-path must be a path starting with /, got {args.auth_path!r}\n")
            sys.exit(2)
        if args.tls_max != "1.2":
            sys.stderr.write(f"server-mtls: {PHA_UNSUPPORTED}\n")
            sys.exit(127)
    for flag in ("cert", "key"):
        if getattr(args, flag) is None:
            sys.stderr.write(f"server-mtls: missing required option --{flag}\n")
            sys.exit(1)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    return args


def log(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def split_pem(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks, rest = [], data
    while begin in rest:
        start = rest.index(begin)
        stop = rest.index(end, start) + len(end)
        blocks.append(rest[start:stop] + b"\n")
        rest = rest[stop:]
    return blocks


def read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read --{flag} {path}: {exc.strerror}") from exc


class Verification:
    """What the verify callback saw on one connection."""

    def __init__(self) -> None:
        self.errors: list[tuple[int, int]] = []  # (depth, X509_V_ERR code)

    def last_error(self) -> Optional[int]:
        return self.errors[-1][1] if self.errors else None


def make_context(args: argparse.Namespace) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if args.tls_max:
        ctx.set_max_proto_version(TLS_VERSIONS[args.tls_max])
    cert_pem, key_pem = read(args.cert, "cert"), read(args.key, "key")
    blocks = split_pem(cert_pem, b"CERTIFICATE")
    if not blocks:
        raise UsageError(f"--cert {args.cert} holds no PEM certificate")
    try:
        ctx.use_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, blocks[0]))
        for extra in blocks[1:]:
            ctx.add_extra_chain_cert(crypto.load_certificate(crypto.FILETYPE_PEM, extra))
        ctx.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem))
        ctx.check_privatekey()
    except (crypto.Error, SSL.Error) as exc:
        raise UsageError(f"cannot use --cert/--key: {exc}") from exc
    if args.root_ca:
        ca_pem = read(args.root_ca, "root-ca")
        ctx.load_verify_locations(args.root_ca)
        # As Node does with its ``ca`` option, name the trusted CAs in the
        # CertificateRequest so that a client can pick a matching certificate.
        for block in split_pem(ca_pem, b"CERTIFICATE"):
            ctx.add_client_ca(crypto.load_certificate(crypto.FILETYPE_PEM, block))
    else:
        # Node without ``ca`` verifies against its default roots; so do we.
        ctx.set_default_verify_paths()
    if args.ca_names == "none":
        ctx.set_client_ca_list([])  # pyOpenSSL's Context.set_client_ca_list: SSL_CTX_set_client_CA_list
    elif args.ca_names:
        names = [
            crypto.load_certificate(crypto.FILETYPE_PEM, block).get_subject()
            for block in split_pem(read(args.ca_names, "ca-names"), b"CERTIFICATE")
        ]
        if not names:
            raise UsageError(f"--ca-names {args.ca_names} holds no PEM certificate")
        ctx.set_client_ca_list(names)
    if args.crl:
        store = ctx.get_cert_store()
        assert store is not None
        crls = split_pem(read(args.crl, "crl"), b"X509 CRL")
        if not crls:
            raise UsageError(f"--crl {args.crl} holds no PEM CRL")
        for crl in (x509.load_pem_x509_crl(block) for block in crls):  # pyOpenSSL 25 (Debian 13) has no crypto.CRL
            store.add_crl(crypto.CRL.from_cryptography(crl) if hasattr(crypto, "CRL") else crl)
        store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:
        lock = threading.Lock()

        def write_keylog(_conn: SSL.Connection, line: bytes) -> None:
            with lock, open(keylog, "ab") as handle:
                handle.write(line + b"\n")

        ctx.set_keylog_callback(write_keylog)
    return ctx


def verify_callback(require: bool) -> Callable[[SSL.Connection, crypto.X509, int, int, int], bool]:
    def callback(conn: SSL.Connection, _cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
        if not ok:
            verification = conn.get_app_data()
            if isinstance(verification, Verification):
                verification.errors.append((depth, errnum))
        return bool(ok) if require else True

    return callback


def wait(sock: socket.socket, deadline: float, readable: bool) -> None:
    """Until ``sock`` is readable (or writable), or the connection's deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("client too slow")
    select.select([sock] if readable else [], [] if readable else [sock], [], remaining)


def retry(conn: SSL.Connection, sock: socket.socket, deadline: float, action: Callable[[], T]) -> T:
    """Run a pyOpenSSL call on a non-blocking socket until it completes or times out."""
    while True:
        try:
            return action()
        except SSL.WantReadError:
            wait(sock, deadline, readable=True)
        except SSL.WantWriteError:
            wait(sock, deadline, readable=False)


def body_for(conn: SSL.Connection, verification: Verification, event: str = "handshake") -> bytes:
    peer = conn.get_peer_certificate()
    if peer is None:
        reason: Optional[str] = NO_CERT_REASON
    else:
        last = verification.last_error()
        reason = None if last is None else x509_names.name(last)
    version = conn.get_protocol_version_name()
    subject = "none" if peer is None else '"' + (peer.get_subject().CN or "") + '"'
    seen = " ".join(f"depth{d}={x509_names.name(e)}" for d, e in verification.errors)
    log(
        f"{event} {version} subject={subject} authorized={'true' if reason is None else 'false'}"
        + ("" if reason is None else f" reason={reason}")
        + (f" errors={seen}" if seen else "")
    )
    if reason is None:
        return b'{"mTLSValid": true}\n'
    return b'{"mTLSValid": false, "reason": "' + reason.encode() + b'"}\n'


def read_request(conn: SSL.Connection, sock: socket.socket, deadline: float) -> bytes:
    """The request head (up to the blank line, or MAX_REQUEST bytes)."""
    request = b""
    while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST:
        request += retry(conn, sock, deadline, lambda: conn.recv(4096))
    return request


def request_path(request: bytes) -> str:
    """The path of the request line ``METHOD PATH HTTP/1.1``, without its query."""
    parts = request.split(b"\r\n", 1)[0].split(b" ")
    target = parts[1].decode("latin-1") if len(parts) > 1 else ""
    return target.split("?", 1)[0]


def renegotiate_for_certificate(
    conn: SSL.Connection, sock: socket.socket, deadline: float, verification: Verification, require: bool
) -> None:
    """Ask for the client certificate now (TLS 1.2): the verify mode of report mode or
    --require on this connection, then SSL_renegotiate and SSL_do_handshake (the
    HelloRequest); the client's new handshake is read as SSL_read reads any record, until
    SSL_renegotiate_pending says it is over."""
    conn.set_verify(
        SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if require else 0),
        verify_callback(require),
    )
    verification.errors.clear()
    conn.renegotiate()
    retry(conn, sock, deadline, conn.do_handshake)
    while conn.renegotiate_pending():
        try:
            conn.recv(1, socket.MSG_PEEK)
            break  # application data instead of a new handshake: answer with what there is
        except SSL.WantReadError:
            if not conn.renegotiate_pending():
                break  # that read finished the client's new handshake: nothing else to wait for
            wait(sock, deadline, readable=True)
        except SSL.WantWriteError:
            wait(sock, deadline, readable=False)


def serve_connection(ctx: SSL.Context, sock: socket.socket, args: argparse.Namespace) -> None:
    deadline = time.monotonic() + DEADLINE_S
    sock.settimeout(0.0)
    conn = SSL.Connection(ctx, sock)
    verification = Verification()
    conn.set_app_data(verification)
    conn.set_accept_state()
    try:
        retry(conn, sock, deadline, conn.do_handshake)
        if args.auth_path is None:
            body = body_for(conn, verification)
            read_request(conn, sock, deadline)
        else:
            log(f"handshake {conn.get_protocol_version_name()} client-certificate=not-requested")
            path = request_path(read_request(conn, sock, deadline))
            if path == args.auth_path:
                log(f"request {path!r} renegotiate")
                renegotiate_for_certificate(conn, sock, deadline, verification, args.require)
                body = body_for(conn, verification, "renegotiated")
            else:
                log(
                    f"request {path!r} {conn.get_protocol_version_name()} subject=none authorized=false "
                    f"reason={NO_CERT_REASON} (certificate not asked for)"
                )
                body = b'{"mTLSValid": false, "reason": "' + NO_CERT_REASON.encode() + b'"}\n'
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
        )
        retry(conn, sock, deadline, lambda: conn.sendall(head + body))
        try:
            conn.shutdown()
        except SSL.Error:
            pass
    except SSL.ZeroReturnError:
        log("connection-closed before a request")
    except SSL.SysCallError as exc:
        log(f"handshake-failed code=syscall message={str(exc.args[1] if len(exc.args) > 1 else exc)!r}")
    except SSL.Error as exc:
        errors = " ".join(f"depth{d}={x509_names.name(e)}" for d, e in verification.errors)
        log(f"handshake-failed code=ssl message={exc!r}" + (f" errors={errors}" if errors else ""))
    except TimeoutError:
        log("connection-timeout client too slow")
    except OSError as exc:
        log(f"connection-error {exc!r}")
    finally:
        # At once, as the ssl module's accept does after a failed handshake: with the
        # client's data still unread (a TLS 1.3 client's request) the kernel answers with
        # RST (RFC 1122 4.2.2.13), which can reach the client before the alert; the cell
        # shows that.
        sock.close()


def listen(port: int) -> socket.socket:
    """Listen on every address, IPv6 and IPv4 alike, as Node's ``listen(port)`` does."""
    try:
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address: tuple[str, int] = ("::", port)
    except OSError:  # no IPv6 in this network namespace
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("0.0.0.0", port)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    return listener


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        ctx = make_context(args)
    except UsageError as exc:
        sys.stderr.write(f"server-mtls: {exc}\n")
        return 2
    if args.auth_path:
        # No CertificateRequest in the first handshake; renegotiate_for_certificate asks.
        ctx.set_verify(SSL.VERIFY_NONE, verify_callback(args.require))
    else:
        ctx.set_verify(
            SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if args.require else 0),
            verify_callback(args.require),
        )
    try:
        listener = listen(args.port)
    except OSError as exc:
        sys.stderr.write(f"server-mtls: cannot listen on port {args.port}: {exc.strerror}\n")
        return 1
    listener.listen(128)
    log(f"Example mTLS app listening at https://localhost:{args.port}")
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    while True:
        sock, _addr = listener.accept()
        slots.acquire()

        def run(s: socket.socket = sock) -> None:
            try:
                serve_connection(ctx, s, args)
            finally:
                slots.release()

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
