'use strict'
// Tiny flag parser shared by the four tutorial scripts: Debian's nodejs ships no
// commander/yargs, and npm is not used inside images (SPEC section 4).
//
// spec: { flagName: 'string' | 'boolean' }. Accepts "--flag value" and "--flag=value".
// Unknown flags and missing values exit 2 with a one-line message.

const path = require('path')

function usageExit (script, usage, message, status) {
  process.stderr.write(`${script}: ${message}\nusage: ${script} ${usage}\n`)
  process.exit(status)
}

function parseArgs (argv, spec, usage) {
  const script = path.basename(process.argv[1] || 'node')
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(`usage: ${script} ${usage}\n`)
      process.exit(0)
    }
    if (!arg.startsWith('--')) usageExit(script, usage, `unexpected argument ${JSON.stringify(arg)}`, 2)
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const kind = spec[name]
    if (kind === undefined) usageExit(script, usage, `unknown option --${name}`, 2)
    if (kind === 'boolean') {
      if (eq !== -1) usageExit(script, usage, `option --${name} takes no value`, 2)
      out[name] = true
      continue
    }
    let value
    if (eq !== -1) {
      value = arg.slice(eq + 1)
    } else {
      if (i + 1 >= argv.length) usageExit(script, usage, `option --${name} needs a value`, 2)
      value = argv[++i]
    }
    out[name] = value
  }
  return out
}

function requireFlags (args, names, usage) {
  const script = path.basename(process.argv[1] || 'node')
  for (const name of names) {
    if (args[name] === undefined) usageExit(script, usage, `missing required option --${name}`, 1)
  }
}

function readFileOrExit (file, flag) {
  const fs = require('fs')
  const script = path.basename(process.argv[1] || 'node')
  try {
    return fs.readFileSync(file)
  } catch (err) {
    process.stderr.write(`${script}: cannot read --${flag} ${file}: ${err.code || err.message}\n`)
    process.exit(2)
  }
}

// Appends each TLS key log line to $SSLKEYLOGFILE, the convention curl and OpenSSL's
// s_client follow, so a capture of this process can be decrypted.
function keylogTo (emitter) {
  const file = process.env.SSLKEYLOGFILE
  if (!file) return
  const fs = require('fs')
  emitter.on('keylog', (line) => fs.appendFileSync(file, line))
}

function splitPem (text, label) {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----\\n?`, 'g')
  return text.match(re) || []
}

module.exports = { parseArgs, requireFlags, readFileOrExit, keylogTo, splitPem, usageExit }
