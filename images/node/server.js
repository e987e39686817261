'use strict'
// The tutorial's one-way TLS server: no client certificate is asked for.
const https = require('https')
const { parseArgs, requireFlags, readFileOrExit, keylogTo, usageExit } = require('./cli-args')

const USAGE = '--cert FILE --key FILE [--port N]'
const cliOptions = parseArgs(process.argv.slice(2), { cert: 'string', key: 'string', port: 'string' }, USAGE)
requireFlags(cliOptions, ['cert', 'key'], USAGE)
const port = cliOptions.port === undefined ? 8443 : Number(cliOptions.port)
if (!Number.isInteger(port) || port < 1 || port > 65535) usageExit('server.js', USAGE, `--port must be 1-65535, got ${cliOptions.port}`, 2)

const options = {
  key: readFileOrExit(cliOptions.key, 'key'),
  cert: readFileOrExit(cliOptions.cert, 'cert')
}
const server = https.createServer(options, (req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json' })
  res.end('{"success": true}\n')
})
keylogTo(server)
server.on('error', (err) => {
  process.stderr.write(`server.js: ${err.message}\n`)
  process.exit(1)
})
server.listen(port, () => {
  console.log(`Example app listening at https://localhost:${port}`)
})
