'use strict'
// The tutorial's one-way client: trusts --root-ca, sends no client certificate.
// Run as a script it is one request; request-batch.js calls request for many.
const https = require('https')
const axios = require('axios')
const { parseArgs, readFileOrExit, keylogTo, runMain } = require('./cli-args')

const USAGE = '[--root-ca FILE] [--url URL]'

async function request (argv, io) {
  const cliOptions = parseArgs(argv, { 'root-ca': 'string', url: 'string' }, USAGE, io)

  const options = {}
  if (cliOptions['root-ca']) {
    options.ca = [readFileOrExit(cliOptions['root-ca'], 'root-ca', io)]
  }
  const httpsAgent = new https.Agent(options)
  io.track(httpsAgent)
  keylogTo(httpsAgent, io)

  try {
    const response = await axios.get(cliOptions.url || 'https://localhost:9443', { httpsAgent })
    io.out(`Response: ${JSON.stringify(response.data)}\n`)
    return 0
  } catch (error) {
    io.err(`   Error Code: ${error.code}\n`)
    io.err(`Error Message: ${error.message}\n`)
    return 1
  }
}

module.exports = request
if (require.main === module) runMain(request)
