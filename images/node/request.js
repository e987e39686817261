'use strict'
// The tutorial's one-way client: trusts --root-ca, sends no client certificate.
const https = require('https')
const axios = require('axios')
const { parseArgs, readFileOrExit, keylogTo } = require('./cli-args')

const USAGE = '[--root-ca FILE] [--url URL]'
const cliOptions = parseArgs(process.argv.slice(2), { 'root-ca': 'string', url: 'string' }, USAGE)

const options = {}
if (cliOptions['root-ca']) {
  options.ca = [readFileOrExit(cliOptions['root-ca'], 'root-ca')]
}
const httpsAgent = new https.Agent(options)
keylogTo(httpsAgent)

axios.get(cliOptions.url || 'https://localhost:9443', { httpsAgent })
  .then((response) => {
    console.log(`Response: ${JSON.stringify(response.data)}`)
  })
  .catch((error) => {
    console.error(`   Error Code: ${error.code}`)
    console.error(`Error Message: ${error.message}`)
    process.exitCode = 1
  })
