'use strict'
// A small Node HTTPS service of the kind people already run: configured by environment
// variables, it asks for a client certificate and tells the caller whether it was valid.
// Nothing here knows about mtls-harness; ./server-mtls translates the harness's flags.
const fs = require('fs')
const https = require('https')

const env = process.env
const options = {
  cert: fs.readFileSync(env.TLS_CERT_FILE),
  key: fs.readFileSync(env.TLS_KEY_FILE),
  requestCert: true,
  rejectUnauthorized: env.REQUIRE_CLIENT_CERT === 'true'
}
if (env.TLS_CA_FILE) options.ca = [fs.readFileSync(env.TLS_CA_FILE)]
if (env.TLS_MAX_VERSION) options.maxVersion = env.TLS_MAX_VERSION

const server = https.createServer(options, (req, res) => {
  const peer = req.socket.getPeerCertificate()
  const who = peer && peer.subject ? peer.subject.CN : 'anonymous'
  console.log(`request from ${who}: authorized=${req.socket.authorized} ${req.socket.authorizationError || ''}`)
  res.writeHead(200, { 'Content-Type': 'application/json' })
  const body = req.socket.authorized
    ? { mTLSValid: true }
    : { mTLSValid: false, reason: String(req.socket.authorizationError) }
  res.end(JSON.stringify(body) + '\n')
})
server.on('tlsClientError', (err) => console.log(`tls error: ${err.code || err.message}`))
server.listen(Number(env.PORT || 8443), () => console.log(`service listening on port ${server.address().port}`))
