'use strict'
// The tutorial's mTLS client: presents --cert (leaf + intermediate) and --key.
const https = require('https')
const axios = require('axios')
const { parseArgs, requireFlags, readFileOrExit, keylogTo } = require('./cli-args')

const USAGE = '--cert FILE --key FILE [--root-ca FILE] [--url URL]'
const cliOptions = parseArgs(process.argv.slice(2), { cert: 'string', key: 'string', 'root-ca': 'string', url: 'string' }, USAGE)
requireFlags(cliOptions, ['cert', 'key'], USAGE)

const options = {}
options.cert = readFileOrExit(cliOptions.cert, 'cert')
options.key = readFileOrExit(cliOptions.key, 'key')
if (cliOptions['root-ca']) {
  options.ca = [readFileOrExit(cliOptions['root-ca'], 'root-ca')]
}
const axiosOptions = {
  httpsAgent: new https.Agent(options)
}
keylogTo(axiosOptions.httpsAgent)

axios.get(cliOptions.url || 'https://localhost:9443', axiosOptions)
  .then((response) => {
    console.log(response.data)
  })
  .catch((error) => {
    console.error(`   Error Code: ${error.code}`)
    console.error(`Error Message: ${error.message}`)
    process.exitCode = 1
  })
