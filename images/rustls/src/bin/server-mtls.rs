//! server-mtls on rustls 0.20 (images/CONTRACT.md).
//!
//! Report mode (default): a ClientCertVerifier that wraps rustls's own
//! `AllowAnyAuthenticatedClient` (webpki path building against the --root-ca store),
//! makes the certificate optional (`client_auth_mandatory() -> Some(false)`), names the
//! same roots in the CertificateRequest, and in `verify_client_cert` records the error
//! rustls returned and accepts. The body's reason is that error's Display
//! (`invalid peer certificate: UnknownIssuer`). A client that sends no certificate gets
//! the Display of the error rustls raises for it when the certificate is mandatory,
//! `NoCertificatesPresented`: `peer sent no certificates`.
//!
//! --require: `AllowAnyAuthenticatedClient` as it is (mandatory): rustls ends the
//! handshake with its own alert and the verifier's error, which the log line shows.
//!
//! Without --root-ca the trust store is empty: rustls has no default trust for client
//! authentication (AllowAnyAuthenticatedClient::new takes the store the application
//! gives it), so every client certificate is untrusted (UnknownIssuer).
//!
//! --crl: rustls 0.20 / webpki 0.22 have no revocation checking: exit 127.
//!
//! --ca-names FILE|none (report mode): the verifier's `client_auth_root_subjects`, the
//! trait method rustls asks for the CertificateRequest's names, returns the subjects of
//! FILE's certificates (as `RootCertStore::subjects` encodes them) or an empty list, while
//! verification stays with --root-ca. With --require the verifier is rustls's own
//! `AllowAnyAuthenticatedClient`, whose names are its roots: exit 127.
//!
//! --auth-path PATH: exit 127 in TLS 1.2 and 1.3 (and without --tls-max). rustls 0.20 does
//! not renegotiate (a "non-feature"; a ClientHello after the handshake gets a
//! no_renegotiation warning alert) and has no post-handshake authentication: the server
//! sends its CertificateRequest only inside the handshake, ServerConnection has no call to
//! send one later, and after the handshake a TLS 1.3 server accepts only application data
//! and KeyUpdate.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{AllowAnyAuthenticatedClient, ClientCertVerified, ClientCertVerifier};
use rustls::{Certificate, DistinguishedNames, KeyLogFile, RootCertStore, ServerConfig, ServerConnection};

use mtls_rustls::{describe_io_error, error_name, json_escape, load_certs, load_key, subject_cn, tls_error, version_line, version_name};

const DEADLINE: Duration = Duration::from_secs(10);
const MAX_REQUEST: usize = 16384;
const USAGE: &str =
    "usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]";
/// Why --auth-path cannot be honoured, by TLS version (rustls 0.20.8 sources, as the registry ships them).
const NO_RENEGOTIATION_AUTH: &str = "--auth-path is not supported in TLS 1.2: rustls 0.20 does not renegotiate \
(\"rustls does not and will not support: ... Renegotiation\", rustls/src/lib.rs:37-52), and after the handshake a server \
answers a client's renegotiation ClientHello with a no_renegotiation warning alert (rustls/src/conn.rs:972-983); it \
cannot start one either, so it can ask for a certificate only in the first handshake";
const NO_POST_HANDSHAKE_AUTH: &str = "--auth-path is not supported in TLS 1.3: rustls 0.20 has no post-handshake \
authentication: its server sends a CertificateRequest (with an empty context) only inside the handshake \
(rustls/src/server/tls13.rs:357, 703-750), ServerConnection has no call to send one later (rustls/src/server/server_conn.rs:355-472), \
and after the handshake the server accepts only application data and KeyUpdate (rustls/src/server/tls13.rs:1307-1330); \
the post_handshake_auth extension is only an enum value (rustls/src/msgs/enums.rs:220)";

thread_local! {
    /// What the client-certificate verifier said on this thread's connection.
    static VERIFY_RESULT: RefCell<Option<Result<(), rustls::Error>>> = RefCell::new(None);
}

/// Report mode: wraps `AllowAnyAuthenticatedClient`, makes the certificate optional,
/// records the verifier's verdict for the connection's thread and accepts.
struct Recording {
    inner: Arc<dyn ClientCertVerifier>,
    /// --ca-names: the names to list instead of the roots' (None: the roots').
    names: Option<DistinguishedNames>,
}

impl ClientCertVerifier for Recording {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> Option<bool> {
        Some(false)
    }

    fn client_auth_root_subjects(&self) -> Option<DistinguishedNames> {
        match &self.names {
            Some(names) => Some(names.clone()),
            None => self.inner.client_auth_root_subjects(),
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &Certificate,
        intermediates: &[Certificate],
        now: SystemTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let record = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .map(|_| ());
        VERIFY_RESULT.with(|slot| *slot.borrow_mut() = Some(record));
        Ok(ClientCertVerified::assertion())
    }
}

struct Args {
    cert: Option<String>,
    key: Option<String>,
    root_ca: Option<String>,
    require: bool,
    tls_max: Option<String>,
    crl: Option<String>,
    ca_names: Option<String>,
    auth_path: Option<String>,
    port: u16,
}

fn usage_error(message: &str) -> ! {
    eprintln!("server-mtls: {}", message);
    eprintln!("{}", USAGE);
    exit(2);
}

fn parse_args() -> Args {
    let mut args =
        Args { cert: None, key: None, root_ca: None, require: false, tls_max: None, crl: None, ca_names: None, auth_path: None, port: 9443 };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().unwrap_or_else(|| usage_error(&format!("option {} needs a value", name)));
        match flag.as_str() {
            "--cert" => args.cert = Some(value("--cert")),
            "--key" => args.key = Some(value("--key")),
            "--root-ca" => args.root_ca = Some(value("--root-ca")),
            "--require" => args.require = true,
            "--tls-max" => {
                let v = value("--tls-max");
                if v != "1.2" && v != "1.3" {
                    usage_error(&format!("--tls-max must be 1.2 or 1.3, got {}", v));
                }
                args.tls_max = Some(v);
            }
            "--crl" => args.crl = Some(value("--crl")),
            "--ca-names" => args.ca_names = Some(value("--ca-names")),
            "--auth-path" => {
                let v = value("--auth-path");
                if !v.starts_with('/') {
                    eprintln!("server-mtls: --auth-path must be a path starting with /, got {:?}", v);
                    exit(2);
                }
                args.auth_path = Some(v);
            }
            "--port" => {
                let v = value("--port");
                args.port = match v.parse::<u16>() {
                    Ok(p) if p > 0 => p,
                    _ => usage_error(&format!("--port must be 1-65535, got {}", v)),
                };
            }
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
    for (flag, given) in [("--cert", args.cert.is_some()), ("--key", args.key.is_some())] {
        if !given {
            eprintln!("server-mtls: missing required option {}", flag);
            exit(1);
        }
    }
    args
}

fn log(line: &str) {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{}", line);
    let _ = out.flush();
}

fn fail(message: String) -> ! {
    eprintln!("server-mtls: {}", message);
    exit(2);
}

fn make_config(args: &Args) -> ServerConfig {
    let chain = load_certs(args.cert.as_deref().unwrap(), "cert").unwrap_or_else(|e| fail(e));
    let key = load_key(args.key.as_deref().unwrap()).unwrap_or_else(|e| fail(e));
    let mut roots = RootCertStore::empty();
    if let Some(path) = &args.root_ca {
        for cert in load_certs(path, "root-ca").unwrap_or_else(|e| fail(e)) {
            if let Err(e) = roots.add(&cert) {
                fail(format!("--root-ca {}: webpki cannot use a certificate as a trust anchor: {:?}", path, e));
            }
        }
    }
    let verifier: Arc<dyn ClientCertVerifier> = if args.require {
        AllowAnyAuthenticatedClient::new(roots)
    } else {
        let names = args.ca_names.as_deref().map(|path| {
            if path == "none" {
                return DistinguishedNames::new();
            }
            let mut listed = RootCertStore::empty();
            for cert in load_certs(path, "ca-names").unwrap_or_else(|e| fail(e)) {
                if let Err(e) = listed.add(&cert) {
                    fail(format!("--ca-names {}: webpki cannot read a certificate's subject: {:?}", path, e));
                }
            }
            #[allow(deprecated)]
            listed.subjects()
        });
        Arc::new(Recording { inner: AllowAnyAuthenticatedClient::new(roots), names })
    };
    static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let versions = match args.tls_max.as_deref() {
        Some("1.2") => TLS12_ONLY,
        _ => rustls::ALL_VERSIONS,
    };
    let mut config = ServerConfig::builder()
        .with_safe_default_cipher_suites()
        .with_safe_default_kx_groups()
        .with_protocol_versions(versions)
        .unwrap_or_else(|e| fail(format!("protocol versions: {}", e)))
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap_or_else(|e| fail(format!("cannot use --cert/--key: {}", e)));
    // Reads SSLKEYLOGFILE; does nothing when it is unset.
    config.key_log = Arc::new(KeyLogFile::new());
    config
}

/// Close without a reset, so that an alert or response just written reaches the peer.
fn linger_close(sock: &mut TcpStream) {
    let _ = sock.shutdown(Shutdown::Write);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match sock.read(&mut buf) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// `handshake-failed <rustls::Error variant>: <its Display>` (the verifier's own error
/// when it refused the client's certificate), or `handshake-failed io <kind>: <error>`.
fn describe_failure(err: &io::Error) -> String {
    let (code, message) = describe_io_error(err);
    match tls_error(err) {
        Some(_) => format!("handshake-failed {}: {}", code, message),
        None => format!("handshake-failed io {}: {}", code, message),
    }
}

fn handshake_line(conn: &ServerConnection) -> (String, Option<String>) {
    let version = version_name(conn.protocol_version());
    let peer = conn.peer_certificates().and_then(|c| c.first().cloned());
    let reason = match (&peer, VERIFY_RESULT.with(|slot| slot.borrow().clone())) {
        (None, _) => Some(rustls::Error::NoCertificatesPresented.to_string()),
        (Some(_), Some(Err(e))) => Some(e.to_string()),
        (Some(_), _) => None,
    };
    let subject = match &peer {
        None => "none".to_string(),
        Some(cert) => format!("\"{}\"", subject_cn(&cert.0).unwrap_or_default()),
    };
    let line = match &reason {
        None => format!("handshake {} subject={} authorized=true", version, subject),
        Some(r) => format!("handshake {} subject={} authorized=false reason={}", version, subject, r),
    };
    (line, reason)
}

fn serve(config: Arc<ServerConfig>, mut sock: TcpStream) {
    VERIFY_RESULT.with(|slot| *slot.borrow_mut() = None);
    let _ = sock.set_read_timeout(Some(DEADLINE));
    let _ = sock.set_write_timeout(Some(DEADLINE));
    let deadline = Instant::now() + DEADLINE;
    let mut conn = match ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => {
            log(&format!("connection-error {}: {}", error_name(&e), e));
            return;
        }
    };
    while conn.is_handshaking() {
        if Instant::now() > deadline {
            log("connection-timeout client too slow");
            return;
        }
        if let Err(e) = conn.complete_io(&mut sock) {
            log(&describe_failure(&e));
            linger_close(&mut sock);
            return;
        }
    }
    let (line, reason) = handshake_line(&conn);
    log(&line);
    let body = match reason {
        None => "{\"mTLSValid\": true}\n".to_string(),
        Some(r) => format!("{{\"mTLSValid\": false, \"reason\": \"{}\"}}\n", json_escape(&r)),
    };
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        if Instant::now() > deadline {
            log("connection-timeout client too slow");
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                log("connection-closed before a request");
                linger_close(stream.sock);
                return;
            }
            Ok(n) => request.extend_from_slice(&buf[..n]),
            Err(e) => {
                let (code, message) = describe_io_error(&e);
                log(&format!("connection-error {}: {}", code, message));
                linger_close(stream.sock);
                return;
            }
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        body
    );
    if let Err(e) = stream.write_all(response.as_bytes()).and_then(|_| stream.flush()) {
        let (code, message) = describe_io_error(&e);
        log(&format!("connection-error {}: {}", code, message));
        linger_close(stream.sock);
        return;
    }
    stream.conn.send_close_notify();
    while stream.conn.wants_write() {
        if stream.conn.write_tls(stream.sock).is_err() {
            break;
        }
    }
    linger_close(stream.sock);
}

fn listen(port: u16) -> io::Result<TcpListener> {
    // Every address, IPv6 and IPv4 alike (as Node's listen(port) and the Python server).
    let v6: SocketAddr = ([0u16; 8], port).into();
    TcpListener::bind(v6).or_else(|_| TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))))
}

fn main() {
    let args = parse_args();
    if args.crl.is_some() {
        eprintln!(
            "server-mtls: --crl is not supported: rustls 0.20 and webpki 0.22 have no certificate revocation (CRL) checking"
        );
        exit(127);
    }
    if args.ca_names.is_some() && args.require {
        eprintln!(
            "server-mtls: --ca-names is not supported with --require: rustls's AllowAnyAuthenticatedClient names the roots it verifies against (client_auth_root_subjects returns RootCertStore::subjects of that store)"
        );
        exit(127);
    }
    if args.auth_path.is_some() {
        match args.tls_max.as_deref() {
            Some("1.2") => eprintln!("server-mtls: {}", NO_RENEGOTIATION_AUTH),
            Some(_) => eprintln!("server-mtls: {}", NO_POST_HANDSHAKE_AUTH),
            None => eprintln!("server-mtls: {}; {}", NO_RENEGOTIATION_AUTH, NO_POST_HANDSHAKE_AUTH),
        }
        exit(127);
    }
    let config = Arc::new(make_config(&args));
    let listener = match listen(args.port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("server-mtls: cannot listen on port {}: {}", args.port, e);
            exit(1);
        }
    };
    log(&format!("Example mTLS app listening at https://localhost:{}", args.port));
    for sock in listener.incoming() {
        match sock {
            Ok(sock) => {
                let config = Arc::clone(&config);
                let spawned = thread::Builder::new().spawn(move || serve(config, sock));
                if let Err(e) = spawned {
                    log(&format!("connection-error cannot start a thread: {}", e));
                }
            }
            Err(e) => log(&format!("connection-error accept: {}", e)),
        }
    }
}
