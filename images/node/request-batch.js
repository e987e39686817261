'use strict'
// The batch worker of the Node clients (images/CONTRACT.md, "Batch workers").
//
// `node request-batch.js FOLDER` serves `node request-mtls.js ARGS` and `node request.js
// ARGS` without starting Node (and loading axios) for each: it reads request ids from
// FOLDER/requests and, for each, runs the script's own function in this process with the
// request's argv, environment and working folder, and its own output:
//
// * fresh TLS state: the script makes a new https.Agent (its own TLS session cache and
//   socket pool) for every request, and keepAlive is off, so no session or connection
//   of one request is seen by another; the agent is destroyed once the request is over;
// * the request is over when the script's function has returned and every connection
//   its agent opened has closed: when the one-shot process would have exited;
// * the limit is `timeout -k 2`'s: status 124 when it passes, and the agent's
//   connections are destroyed, as the killed process's would be;
// * then the capture marker, if the request has one, and `<id> <status>` in FOLDER/done.
//
// Requests run at the same time, as the one-shot processes would.
const dgram = require('dgram')
const fs = require('fs')
const path = require('path')

const PROGRAMS = {
  'request-mtls.js': require('./request-mtls'),
  'request.js': require('./request')
}

class Exit extends Error {
  constructor (status) {
    super(`exit ${status}`)
    this.status = status
  }
}

function parseRequest (text) {
  const request = { limit: 0, cwd: process.cwd(), env: {}, marker: null, argv: [] }
  for (const line of text.split('\n')) {
    if (line === '') continue
    const space = line.indexOf(' ')
    const key = space === -1 ? line : line.slice(0, space)
    const value = space === -1 ? '' : line.slice(space + 1)
    if (key === 'limit') request.limit = Number(value)
    else if (key === 'cwd') request.cwd = value
    else if (key === 'env') {
      const eq = value.indexOf('=')
      request.env[value.slice(0, eq)] = value.slice(eq + 1)
    } else if (key === 'marker') {
      const [port, payload] = value.split(' ')
      request.marker = { port: Number(port), payload: Buffer.from(payload, 'hex') }
    } else if (key === 'arg') request.argv.push(value)
    else throw new Error(`unknown request line ${JSON.stringify(line)}`)
  }
  if (!(request.limit > 0) || request.argv.length === 0) throw new Error('a request needs a limit and an argv')
  return request
}

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

async function serve (folder, id, udp) {
  const request = parseRequest(fs.readFileSync(path.join(folder, `${id}.req`), 'utf8'))
  const [node, script, ...args] = request.argv
  const run = node === 'node' ? PROGRAMS[script] : undefined
  const out = []
  const err = []
  const agents = []
  const closed = []
  let over = false
  const io = {
    script,
    out: (text) => { if (!over) out.push(text) },
    err: (text) => { if (!over) err.push(text) },
    exit: (status) => { throw new Exit(status) },
    env: Object.assign({}, process.env, request.env),
    cwd: path.resolve(request.cwd),
    track: (agent) => {
      agents.push(agent)
      const create = agent.createConnection
      agent.createConnection = function (...rest) {
        const socket = create.apply(this, rest)
        if (socket && !socket.destroyed) closed.push(new Promise((resolve) => socket.once('close', resolve)))
        return socket
      }
    }
  }
  const deadline = Date.now() + request.limit * 1000
  let status
  if (run === undefined) {
    io.err(`request-batch.js: ${request.argv.join(' ')} is not a request this worker serves\n`)
    status = 127
  } else {
    const finished = run(args, io).then(
      (code) => code,
      (error) => {
        if (error instanceof Exit) return error.status
        io.err(`${error && error.stack ? error.stack : error}\n`) // as an uncaught error prints
        return 1
      })
    const limit = sleep(Math.max(0, deadline - Date.now())).then(() => 'limit')
    status = await Promise.race([finished, limit])
    if (status !== 'limit') {
      // The one-shot process would exit when its last connection closes.
      const ended = await Promise.race([Promise.all(closed).then(() => 'closed'), limit])
      if (ended === 'limit') status = 'limit'
    }
    if (status === 'limit') status = 124
  }
  over = true
  for (const agent of agents) agent.destroy()
  fs.writeFileSync(path.join(folder, `${id}.out`), out.join(''))
  fs.writeFileSync(path.join(folder, `${id}.err`), err.join(''))
  if (request.marker !== null) {
    await new Promise((resolve) => udp.send(request.marker.payload, request.marker.port, '127.0.0.1', () => resolve()))
  }
  return status
}

function main (argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node request-batch.js FOLDER\n')
    return 2
  }
  const folder = argv[0]
  // Read-write: opening a FIFO so never waits, and neither end sees EOF between requests.
  const done = fs.openSync(path.join(folder, 'done'), 'r+')
  const requests = fs.createReadStream(null, { fd: fs.openSync(path.join(folder, 'requests'), 'r+') })
  const udp = dgram.createSocket('udp4')
  udp.unref()
  // A request's stray error (a socket's, after its request ended) must not end the worker.
  process.on('uncaughtException', (error) => process.stderr.write(`uncaught: ${error.stack || error}\n`))
  process.on('unhandledRejection', (error) => process.stderr.write(`unhandled: ${error && error.stack}\n`))
  let buffered = ''
  requests.on('data', (chunk) => {
    buffered += chunk.toString('utf8')
    const lines = buffered.split('\n')
    buffered = lines.pop()
    for (const line of lines) {
      const id = line.trim()
      if (id === '') continue
      serve(folder, id, udp).then(
        (status) => fs.writeSync(done, `${id} ${status}\n`),
        (error) => {
          process.stderr.write(`request ${id}: ${error.stack || error}\n`)
          fs.writeSync(done, `${id} 125\n`)
        })
    }
  })
  fs.writeSync(done, 'ready\n')
  return null
}

const status = main(process.argv.slice(2))
if (status !== null) process.exitCode = status
