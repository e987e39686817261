'use strict'
// Tiny flag parser shared by the four tutorial scripts: Debian's nodejs ships no
// commander/yargs, and npm is not used inside images (SPEC section 4).
//
// spec: { flagName: 'string' | 'boolean' }. Accepts "--flag value" and "--flag=value".
// Unknown flags and missing values exit 2 with a one-line message.
//
// io: where a script's output, exit, environment and working folder are. By default the
// process's own (processIo); the clients' batch worker (request-batch.js) passes one
// request's instead, whose exit throws, so the same code serves one request in-process.

const path = require('path')

function processIo () {
  return {
    script: path.basename(process.argv[1] || 'node'),
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    exit: (status) => process.exit(status),
    env: process.env,
    cwd: process.cwd(),
    track: (agent) => {} // the batch worker waits for the agent's connections to close
  }
}

// A script run as a program: its function's status becomes the process's exit status.
function runMain (run) {
  run(process.argv.slice(2), processIo()).then((status) => { process.exitCode = status })
}

function usageExit (script, usage, message, status, io = processIo()) {
  io.err(`${script}: ${message}\nusage: ${script} ${usage}\n`)
  io.exit(status)
}

function parseArgs (argv, spec, usage, io = processIo()) {
  const script = io.script
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '-h' || arg === '--help') {
      io.out(`usage: ${script} ${usage}\n`)
      io.exit(0)
    }
    if (!arg.startsWith('--')) usageExit(script, usage, `unexpected argument ${JSON.stringify(arg)}`, 2, io)
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const kind = spec[name]
    if (kind === undefined) usageExit(script, usage, `unknown option --${name}`, 2, io)
    if (kind === 'boolean') {
      if (eq !== -1) usageExit(script, usage, `option --${name} takes no value`, 2, io)
      out[name] = true
      continue
    }
    let value
    if (eq !== -1) {
      value = arg.slice(eq + 1)
    } else {
      if (i + 1 >= argv.length) usageExit(script, usage, `option --${name} needs a value`, 2, io)
      value = argv[++i]
    }
    out[name] = value
  }
  return out
}

function requireFlags (args, names, usage, io = processIo()) {
  for (const name of names) {
    if (args[name] === undefined) usageExit(io.script, usage, `missing required option --${name}`, 1, io)
  }
}

function readFileOrExit (file, flag, io = processIo()) {
  const fs = require('fs')
  try {
    return fs.readFileSync(path.resolve(io.cwd, file))
  } catch (err) {
    io.err(`${io.script}: cannot read --${flag} ${file}: ${err.code || err.message}\n`)
    io.exit(2)
  }
}

// Appends each TLS key log line to $SSLKEYLOGFILE, the convention curl and OpenSSL's
// s_client follow, so a capture of this process can be decrypted.
function keylogTo (emitter, io = processIo()) {
  const file = io.env.SSLKEYLOGFILE
  if (!file) return
  const fs = require('fs')
  const target = path.resolve(io.cwd, file)
  emitter.on('keylog', (line) => fs.appendFileSync(target, line))
}

function splitPem (text, label) {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----\\n?`, 'g')
  return text.match(re) || []
}

module.exports = { parseArgs, requireFlags, readFileOrExit, keylogTo, splitPem, usageExit, processIo, runMain }
