'use strict'
// The tutorial's mTLS server: requestCert: true, rejectUnauthorized: false (report
// mode), so every handshake completes and the body says whether the client was valid.
// --require switches to rejectUnauthorized: true (reject at the handshake).
// --auth-path PATH starts with requestCert: false and asks for the certificate only for a
// request for PATH, with tlsSocket.renegotiate({ requestCert: true, ... }) (TLS 1.2 only),
// as tls.md documents it ("can be used to request a peer's certificate after the secure
// connection has been established"), and Node's defaults otherwise: session tickets stay
// on and no secureOptions are set, so a client that offers its ticket in the renegotiation
// (Node's and JSSE's clients do) resumes its session, which asks for no certificate
// (images/node/impl.toml, [[expect]] per-path-client-auth).
const https = require('https')
const { parseArgs, requireFlags, readFileOrExit, keylogTo, splitPem, usageExit } = require('./cli-args')

const USAGE = '--cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]'
const cliOptions = parseArgs(process.argv.slice(2), {
  cert: 'string', key: 'string', 'root-ca': 'string', require: 'boolean', 'tls-max': 'string', crl: 'string', 'ca-names': 'string', 'auth-path': 'string', port: 'string'
}, USAGE)
// Node's TLS options have no list of CA names apart from `ca`: SecureContext::AddCACert
// adds every `ca` certificate to the trust store and to the CertificateRequest's names.
const CA_NAMES_UNSUPPORTED = '--ca-names is not supported: Node 18 has no TLS option for the CertificateRequest\'s ' +
  'CA names apart from `ca`, which both trusts the CAs and names them (SecureContext::AddCACert calls ' +
  'SSL_CTX_add_client_CA for each: https://github.com/nodejs/node/blob/v18.20.4/src/crypto/crypto_context.cc)'
if (cliOptions['ca-names'] !== undefined) usageExit('server-mtls.js', USAGE, CA_NAMES_UNSUPPORTED, 127)
requireFlags(cliOptions, ['cert', 'key'], USAGE)

const TLS_VERSIONS = { 1.2: 'TLSv1.2', 1.3: 'TLSv1.3' }
const port = cliOptions.port === undefined ? 9443 : Number(cliOptions.port)
if (!Number.isInteger(port) || port < 1 || port > 65535) usageExit('server-mtls.js', USAGE, `--port must be 1-65535, got ${cliOptions.port}`, 2)
if (cliOptions['tls-max'] !== undefined && !TLS_VERSIONS[cliOptions['tls-max']]) usageExit('server-mtls.js', USAGE, `--tls-max must be 1.2 or 1.3, got ${cliOptions['tls-max']}`, 2)
const authPath = cliOptions['auth-path']
if (authPath !== undefined && !authPath.startsWith('/')) {
  process.stderr.write(`server-mtls.js: --auth-path must be a path starting with /, got ${JSON.stringify(authPath)}\n`)
  process.exit(2)
}
// Node 18's only way to ask for a certificate after the handshake is tlsSocket.renegotiate(),
// i.e. SSL_renegotiate, which TLS 1.3 does not have; Node has no API for TLS 1.3
// post-handshake authentication (SSL_verify_client_post_handshake).
const PHA_UNSUPPORTED = '--auth-path in TLS 1.3 is not supported: Node 18 asks for a client certificate after the ' +
  'handshake only with tlsSocket.renegotiate(), and "For TLSv1.3, renegotiation cannot be initiated" ' +
  '(https://github.com/nodejs/node/blob/v18.20.4/doc/api/tls.md#L1501-L1508; TLSWrap::Renegotiate calls SSL_renegotiate: ' +
  'https://github.com/nodejs/node/blob/v18.20.4/src/crypto/crypto_tls.cc#L1944-L1950); Node has no API for TLS 1.3 ' +
  'post-handshake authentication (SSL_verify_client_post_handshake: https://github.com/nodejs/node/issues/36926)'
if (authPath !== undefined && cliOptions['tls-max'] !== '1.2') {
  process.stderr.write(`server-mtls.js: ${PHA_UNSUPPORTED}\n`)
  process.exit(127)
}

const options = {
  key: readFileOrExit(cliOptions.key, 'key'),
  cert: readFileOrExit(cliOptions.cert, 'cert'),
  // With --auth-path the first handshake asks for no certificate (no CertificateRequest).
  requestCert: authPath === undefined,
  rejectUnauthorized: Boolean(cliOptions.require)
}
if (cliOptions['root-ca']) {
  options.ca = [readFileOrExit(cliOptions['root-ca'], 'root-ca')]
}
if (cliOptions['tls-max']) {
  options.maxVersion = TLS_VERSIONS[cliOptions['tls-max']]
}
if (cliOptions.crl) {
  // Node's SecureContext reads one CRL per buffer, so a file holding several CRLs
  // (one per CA of the chain) is split; with any CRL set Node checks the whole chain.
  options.crl = splitPem(readFileOrExit(cliOptions.crl, 'crl').toString('utf8'), 'X509 CRL')
}

function describePeer (socket) {
  const peer = socket.getPeerCertificate()
  return peer && peer.subject ? `subject=${JSON.stringify(peer.subject.CN || '')}` : 'subject=none'
}

function secureConnectionCallback (socket) {
  // The server tells what it saw, one line per handshake.
  if (authPath !== undefined) {
    // No certificate was asked for yet: the request's lines say what comes of it.
    console.log(`handshake ${socket.getProtocol()} client-certificate=not-requested`)
    let logged = false
    socket.on('error', (err) => { // logged once: Node emitted this one twice here
      if (!logged) console.log(`connection-error code=${err.code || 'none'} message=${JSON.stringify(err.message)}`)
      logged = true
    })
    return
  }
  const reason = socket.authorized ? '' : ` reason=${socket.authorizationError}`
  console.log(`handshake ${socket.getProtocol()} ${describePeer(socket)} authorized=${socket.authorized}${reason}`)
}

// Report mode's body for the socket as it stands: Node's authorized/authorizationError.
function reportBody (socket) {
  if (socket.authorized) return '{"mTLSValid": true}\n'
  return `{"mTLSValid": false, "reason": "${socket.authorizationError}"}\n`
}

// Without requestCert Node verifies nothing (authorizationError stays null); a request for
// another path than --auth-path gets report mode's body for "no certificate": the reason
// Node's verifyError gives when the client sent none (VerifyPeerCertificate's default).
const NO_CERT_REASON = 'UNABLE_TO_GET_ISSUER_CERT'

function handleAuthPath (req, res) {
  const socket = req.socket
  const path = req.url.split('?')[0]
  if (path !== authPath) {
    console.log(`request ${JSON.stringify(path)} ${socket.getProtocol()} subject=none authorized=false reason=${NO_CERT_REASON} (certificate not asked for)`)
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end(`{"mTLSValid": false, "reason": "${NO_CERT_REASON}"}\n`)
    return
  }
  // The documented way to ask for the certificate now: renegotiate with requestCert: true
  // (rejectUnauthorized as --require says); the callback runs on the next 'secure' event,
  // after onServerSocketSecure has set authorized / authorizationError again.
  const protocol = socket.getProtocol()
  // Node destroys the socket without an 'error' for a missing certificate under
  // rejectUnauthorized (lib/_tls_wrap.js, onerror) and for a rejected one (onServerSocketSecure).
  socket.once('close', () => {
    if (!res.writableEnded) console.log(`connection-closed ${protocol} during or after the renegotiation, no answer`)
  })
  const started = socket.renegotiate({ requestCert: true, rejectUnauthorized: Boolean(cliOptions.require) }, (err) => {
    if (err) {
      console.log(`renegotiation-failed ${protocol} code=${err.code || 'none'} message=${JSON.stringify(err.message)}`)
      if (!socket.destroyed) socket.destroy()
      return
    }
    const reason = socket.authorized ? '' : ` reason=${socket.authorizationError}`
    // A socket destroyed for rejectUnauthorized no longer shows its peer's certificate.
    const peer = socket.destroyed ? 'subject=unknown' : describePeer(socket)
    const rejected = socket.destroyed ? ' rejected (rejectUnauthorized)' : ''
    console.log(`renegotiated ${protocol} ${peer} authorized=${socket.authorized}${reason}${rejected}`)
    if (socket.destroyed) return
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end(reportBody(socket))
  })
  console.log(`request ${JSON.stringify(path)} ${protocol} renegotiate=${started}`)
}

let server
try {
  server = https.createServer(options, authPath !== undefined ? handleAuthPath : (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end(reportBody(req.socket))
  })
} catch (err) {
  process.stderr.write(`server-mtls.js: cannot use the certificate or key: ${err.message}\n`)
  process.exit(2)
}
server.on('secureConnection', secureConnectionCallback)
server.on('tlsClientError', (err) => {
  console.log(`handshake-failed code=${err.code || 'none'} message=${JSON.stringify(err.message)}`)
})
keylogTo(server)
server.on('error', (err) => {
  process.stderr.write(`server-mtls.js: ${err.message}\n`)
  process.exit(1)
})
server.listen(port, () => {
  console.log(`Example mTLS app listening at https://localhost:${port}`)
})
