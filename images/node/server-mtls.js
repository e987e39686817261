'use strict'
// The tutorial's mTLS server: requestCert: true, rejectUnauthorized: false (report
// mode), so every handshake completes and the body says whether the client was valid.
// --require switches to rejectUnauthorized: true (reject at the handshake).
const https = require('https')
const { parseArgs, requireFlags, readFileOrExit, keylogTo, splitPem, usageExit } = require('./cli-args')

const USAGE = '--cert FILE --key FILE [--root-ca FILE] [--require] [--tls-max 1.2|1.3] [--crl FILE] [--port N]'
const cliOptions = parseArgs(process.argv.slice(2), {
  cert: 'string', key: 'string', 'root-ca': 'string', require: 'boolean', 'tls-max': 'string', crl: 'string', port: 'string'
}, USAGE)
requireFlags(cliOptions, ['cert', 'key'], USAGE)

const TLS_VERSIONS = { 1.2: 'TLSv1.2', 1.3: 'TLSv1.3' }
const port = cliOptions.port === undefined ? 9443 : Number(cliOptions.port)
if (!Number.isInteger(port) || port < 1 || port > 65535) usageExit('server-mtls.js', USAGE, `--port must be 1-65535, got ${cliOptions.port}`, 2)
if (cliOptions['tls-max'] !== undefined && !TLS_VERSIONS[cliOptions['tls-max']]) usageExit('server-mtls.js', USAGE, `--tls-max must be 1.2 or 1.3, got ${cliOptions['tls-max']}`, 2)

const options = {
  key: readFileOrExit(cliOptions.key, 'key'),
  cert: readFileOrExit(cliOptions.cert, 'cert'),
  requestCert: true,
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
  const reason = socket.authorized ? '' : ` reason=${socket.authorizationError}`
  console.log(`handshake ${socket.getProtocol()} ${describePeer(socket)} authorized=${socket.authorized}${reason}`)
}

let server
try {
  server = https.createServer(options, (req, res) => {
    const socket = req.socket
    res.writeHead(200, { 'Content-Type': 'application/json' })
    if (socket.authorized) {
      res.end('{"mTLSValid": true}\n')
    } else {
      res.end(`{"mTLSValid": false, "reason": "${socket.authorizationError}"}\n`)
    }
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
