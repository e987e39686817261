//! request-mtls on rustls 0.20 (images/CONTRACT.md).
//!
//! `ClientConfig::builder().with_safe_defaults().with_root_certificates(roots)` then
//! `.with_single_cert(chain, key)` or `.with_no_client_auth()`: rustls's default server
//! verification (webpki chain building, then the URL's host name). Roots: --root-ca, or
//! else the system store as rustls-native-certs loads it (SSL_CERT_FILE, else
//! /etc/ssl/certs/ca-certificates.crt found by openssl-probe), which is how Debian's
//! rustls documentation builds a root store.
//!
//! Sends `GET <path> HTTP/1.1`, prints the response body. On failure prints
//! `   Error Code: <rustls::Error variant, or io::ErrorKind>` and
//! `Error Message: <its Display>` on stderr and exits 1.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::exit;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, KeyLogFile, RootCertStore, ServerName};

use mtls_rustls::{describe_io_error, error_name, load_certs, load_key, tls_error, version_line};

const TIMEOUT: Duration = Duration::from_secs(10);
const USAGE: &str = "usage: request-mtls [--cert FILE --key FILE] [--root-ca FILE] [--url URL]";

struct Args {
    cert: Option<String>,
    key: Option<String>,
    root_ca: Option<String>,
    url: String,
}

fn usage_error(message: &str) -> ! {
    eprintln!("request-mtls: {}", message);
    eprintln!("{}", USAGE);
    exit(2);
}

fn parse_args() -> Args {
    let mut args = Args { cert: None, key: None, root_ca: None, url: "https://localhost:9443".to_string() };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().unwrap_or_else(|| usage_error(&format!("option {} needs a value", name)));
        match flag.as_str() {
            "--cert" => args.cert = Some(value("--cert")),
            "--key" => args.key = Some(value("--key")),
            "--root-ca" => args.root_ca = Some(value("--root-ca")),
            "--url" => args.url = value("--url"),
            "--version" => {
                println!("{}", version_line());
                exit(0);
            }
            "-h" | "--help" => {
                println!("{}", USAGE);
                exit(0);
            }
            other => usage_error(&format!("unknown option {}", other)),
        }
    }
    match (&args.cert, &args.key) {
        (Some(_), None) => {
            eprintln!("request-mtls: missing required option --key");
            exit(1);
        }
        (None, Some(_)) => {
            eprintln!("request-mtls: missing required option --cert");
            exit(1);
        }
        _ => {}
    }
    args
}

fn fail(code: &str, message: &str) -> ! {
    eprintln!("   Error Code: {}\nError Message: {}", code, message);
    exit(1);
}

fn fail_io(err: &io::Error) -> ! {
    let (code, message) = describe_io_error(err);
    fail(&code, &message);
}

/// An I/O failure on an established connection: when the server's last records (its alert)
/// are still in the socket's receive queue, rustls's reading of them is the error to report
/// (a server that sends an alert and closes can make our write fail before we read it).
fn fail_conn(err: &io::Error, conn: &mut ClientConnection, sock: &mut TcpStream) -> ! {
    if tls_error(err).is_none() {
        let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
        for _ in 0..64 {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Err(tls) = conn.process_new_packets() {
                        fail(&error_name(&tls), &tls.to_string());
                    }
                }
            }
        }
    }
    fail_io(err);
}

fn fail_file(message: String) -> ! {
    eprintln!("request-mtls: {}", message);
    exit(2);
}

/// (host, port, path) of an https URL.
fn parse_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let end = stripped.find(']')?;
        let host = &stripped[..end];
        let port = match stripped[end + 1..].strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 443,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), 443),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port, path))
}

fn roots(args: &Args) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    match &args.root_ca {
        Some(path) => {
            for cert in load_certs(path, "root-ca").unwrap_or_else(|e| fail_file(e)) {
                if let Err(e) = roots.add(&cert) {
                    fail_file(format!("--root-ca {}: webpki cannot use a certificate as a trust anchor: {:?}", path, e));
                }
            }
        }
        None => match rustls_native_certs::load_native_certs() {
            Ok(certs) => {
                let ders: Vec<Vec<u8>> = certs.into_iter().map(|c| c.0).collect();
                roots.add_parsable_certificates(&ders);
            }
            Err(e) => fail_io(&e),
        },
    }
    roots
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    // Every address of the host in turn; the error reported is that of the last address
    // this machine can reach at all (not "address not available" for an IPv6 loopback
    // that the network namespace lacks).
    let mut last: Option<io::Error> = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(sock) => return Ok(sock),
            Err(e) => {
                let unreachable = e.kind() == io::ErrorKind::AddrNotAvailable;
                if last.is_none() || !unreachable {
                    last = Some(e);
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no address for {}", host))))
}

/// The body of an HTTP/1.1 response, once it is complete (Content-Length, chunked, or
/// the end of the connection when `eof`).
fn body_of(response: &[u8], eof: bool) -> Option<Vec<u8>> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").map_or(false, |v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&rest[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some(out);
            }
            if rest.len() < size + 2 {
                return if eof { Some(out) } else { None };
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() >= length {
            return Some(body[..length].to_vec());
        }
        return if eof { Some(body.to_vec()) } else { None };
    }
    if eof {
        Some(body.to_vec())
    } else {
        None
    }
}

fn main() {
    let args = parse_args();
    let (host, port, path) = parse_url(&args.url).unwrap_or_else(|| usage_error(&format!("not an https URL: {}", args.url)));
    let builder = ClientConfig::builder().with_safe_defaults().with_root_certificates(roots(&args));
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "cert").unwrap_or_else(|e| fail_file(e));
            let key = load_key(key).unwrap_or_else(|e| fail_file(e));
            builder
                .with_single_cert(chain, key)
                .unwrap_or_else(|e| fail(&error_name(&e), &e.to_string()))
        }
        _ => builder.with_no_client_auth(),
    };
    // Reads SSLKEYLOGFILE; does nothing when it is unset.
    config.key_log = Arc::new(KeyLogFile::new());
    let server_name = ServerName::try_from(host.as_str())
        .unwrap_or_else(|e| fail("InvalidDnsNameError", &format!("{}: {}", e, host)));
    let mut conn = ClientConnection::new(Arc::new(config), server_name)
        .unwrap_or_else(|e| fail(&error_name(&e), &e.to_string()));
    let mut sock = connect(&host, port).unwrap_or_else(|e| fail_io(&e));
    let _ = sock.set_read_timeout(Some(TIMEOUT));
    let _ = sock.set_write_timeout(Some(TIMEOUT));
    let host_header = if port == 443 { host.clone() } else { format!("{}:{}", host, port) };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: request-mtls (rustls)\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        path, host_header
    );
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    // Stream's write completes the handshake first.
    if let Err(e) = stream.write_all(request.as_bytes()).and_then(|_| stream.flush()) {
        fail_conn(&e, stream.conn, stream.sock);
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let body = loop {
        match stream.read(&mut buf) {
            Ok(0) => match body_of(&response, true) {
                Some(body) => break body,
                None => {
                    // Stream::read said end of stream (Ok(0)) before a whole response: what
                    // the docs' read_to_end would take for the end. The connection's reader
                    // says what ended it: close_notify (Ok), a TCP close without it
                    // (UnexpectedEof), or nothing at all (WouldBlock: rustls 0.20's Stream
                    // returns Ok(0) once complete_io has only written, e.g. its own
                    // no_renegotiation warning; fixed upstream in rustls PR #1299). That last
                    // is reported as the stack said it, without waiting for anything more.
                    match stream.conn.reader().read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => fail(
                            "EndOfStream",
                            "rustls::Stream::read returned 0 (end of stream) before an HTTP response, \
                             with neither close_notify nor a TCP close from the server",
                        ),
                        Err(e) => fail_conn(&e, stream.conn, stream.sock),
                        Ok(_) => fail("UnexpectedEof", "the server closed the connection (close_notify) before an HTTP response"),
                    }
                }
            },
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if let Some(body) = body_of(&response, false) {
                    break body;
                }
            }
            // Any error before a whole response ends the request as rustls reports it, an
            // UnexpectedEof (a TCP close without close_notify) included: the loop stops at the
            // end of a Content-Length or chunked body, so only a response that the close
            // itself would delimit meets one, and without close_notify that may be truncated.
            Err(e) => fail_conn(&e, stream.conn, stream.sock),
        }
    };
    stream.conn.send_close_notify();
    let _ = stream.conn.write_tls(stream.sock);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let _ = out.write_all(&body);
    let _ = out.flush();
}
