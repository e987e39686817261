//! What server-mtls and request-mtls share: PEM loading, the stack's version line,
//! rustls's own names for errors, and the subject CN of a DER certificate.

use std::fs::File;
use std::io::{self, BufReader};

use rustls::{Certificate, PrivateKey};

/// `rustls 0.20.8 (webpki 0.22.0, ring 0.16.20)`: the crate versions Cargo resolved.
pub fn version_line() -> String {
    format!(
        "rustls {} (webpki {}, ring {})",
        env!("MTLS_RUSTLS_VERSION"),
        env!("MTLS_WEBPKI_VERSION"),
        env!("MTLS_RING_VERSION")
    )
}

fn open(path: &str, flag: &str) -> Result<BufReader<File>, String> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| format!("cannot read --{} {}: {}", flag, path, e))
}

/// Every CERTIFICATE block of a PEM file, in order.
pub fn load_certs(path: &str, flag: &str) -> Result<Vec<Certificate>, String> {
    let mut reader = open(path, flag)?;
    let ders = rustls_pemfile::certs(&mut reader).map_err(|e| format!("cannot read --{} {}: {}", flag, path, e))?;
    if ders.is_empty() {
        return Err(format!("--{} {} holds no PEM certificate", flag, path));
    }
    Ok(ders.into_iter().map(Certificate).collect())
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &str) -> Result<PrivateKey, String> {
    let mut reader = open(path, "key")?;
    let items = rustls_pemfile::read_all(&mut reader).map_err(|e| format!("cannot read --key {}: {}", path, e))?;
    for item in items {
        match item {
            rustls_pemfile::Item::PKCS8Key(der)
            | rustls_pemfile::Item::RSAKey(der)
            | rustls_pemfile::Item::ECKey(der) => return Ok(PrivateKey(der)),
            _ => {}
        }
    }
    Err(format!("--key {} holds no PEM private key", path))
}

/// The variant name of a rustls error: `InvalidCertificateData`, `AlertReceived`...
pub fn error_name(err: &rustls::Error) -> String {
    let debug = format!("{:?}", err);
    debug
        .split(|c: char| c == '(' || c == '{' || c == ' ')
        .next()
        .unwrap_or("")
        .to_string()
}

/// (code, message) for an I/O error: the rustls::Error it carries (its variant name and
/// its Display), or else the io::ErrorKind and the error's Display.
pub fn describe_io_error(err: &io::Error) -> (String, String) {
    if let Some(tls) = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return (error_name(tls), tls.to_string());
    }
    (format!("{:?}", err.kind()), err.to_string())
}

/// The rustls::Error an I/O error carries, if any.
pub fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// `TLSv1.3` for rustls's `TLSv1_3`.
pub fn version_name(version: Option<rustls::ProtocolVersion>) -> String {
    match version {
        Some(v) => format!("{:?}", v).replace('_', "."),
        None => "unknown".to_string(),
    }
}

// --- a minimal DER reader: enough to find the subject's commonName -------------------

struct Der<'a> {
    data: &'a [u8],
}

impl<'a> Der<'a> {
    /// The next TLV: (tag, contents).
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let data = self.data;
        if data.len() < 2 {
            return None;
        }
        let tag = data[0];
        let (len, header) = if data[1] < 0x80 {
            (data[1] as usize, 2)
        } else {
            let count = (data[1] & 0x7f) as usize;
            if count == 0 || count > 4 || data.len() < 2 + count {
                return None;
            }
            let mut len = 0usize;
            for byte in &data[2..2 + count] {
                len = (len << 8) | *byte as usize;
            }
            (len, 2 + count)
        };
        if data.len() < header + len {
            return None;
        }
        self.data = &data[header + len..];
        Some((tag, &data[header..header + len]))
    }
}

const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's commonName of a DER certificate (the last CN, as OpenSSL shows it).
pub fn subject_cn(cert: &[u8]) -> Option<String> {
    let (_, certificate) = Der { data: cert }.next()?;
    let (_, tbs) = Der { data: certificate }.next()?;
    let mut fields = Der { data: tbs };
    let mut first = fields.next()?;
    if first.0 == 0xa0 {
        first = fields.next()?; // [0] version, then serialNumber
    }
    let _serial = first;
    fields.next()?; // signature AlgorithmIdentifier
    fields.next()?; // issuer
    fields.next()?; // validity
    let (_, subject) = fields.next()?;
    let mut cn = None;
    let mut rdns = Der { data: subject };
    while let Some((_, rdn)) = rdns.next() {
        let mut attributes = Der { data: rdn };
        while let Some((_, attribute)) = attributes.next() {
            let mut parts = Der { data: attribute };
            let (_, oid) = parts.next()?;
            let (_, value) = parts.next()?;
            if oid == OID_COMMON_NAME {
                cn = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    cn
}

/// `s` as the inside of a JSON string.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
