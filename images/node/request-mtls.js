'use strict'
// The tutorial's mTLS client: presents --cert (leaf + intermediate) and --key.
// Run as a script it is one request; request-batch.js calls requestMtls for many.
const https = require('https')
const util = require('util')
const axios = require('axios')
const { parseArgs, requireFlags, readFileOrExit, keylogTo, runMain } = require('./cli-args')

const USAGE = '--cert FILE --key FILE [--root-ca FILE] [--url URL]'

async function requestMtls (argv, io) {
  const cliOptions = parseArgs(argv, { cert: 'string', key: 'string', 'root-ca': 'string', url: 'string' }, USAGE, io)
  requireFlags(cliOptions, ['cert', 'key'], USAGE, io)

  const options = {}
  options.cert = readFileOrExit(cliOptions.cert, 'cert', io)
  options.key = readFileOrExit(cliOptions.key, 'key', io)
  if (cliOptions['root-ca']) {
    options.ca = [readFileOrExit(cliOptions['root-ca'], 'root-ca', io)]
  }
  const axiosOptions = {
    httpsAgent: new https.Agent(options)
  }
  io.track(axiosOptions.httpsAgent)
  keylogTo(axiosOptions.httpsAgent, io)

  try {
    const response = await axios.get(cliOptions.url || 'https://localhost:9443', axiosOptions)
    io.out(util.format(response.data) + '\n') // what console.log(response.data) prints
    return 0
  } catch (error) {
    io.err(`   Error Code: ${error.code}\n`)
    io.err(`Error Message: ${error.message}\n`)
    return 1
  }
}

module.exports = requestMtls
if (require.main === module) runMain(requestMtls)
