// A test broker: Aedes on 127.0.0.1:PORT, alone (memory) or as one node of a cluster on Redis
// (aedes-persistence-redis keeps retained messages and sessions, mqemitter-redis relays
// publishes between nodes). Usage: node broker.mjs PORT [REDIS_PORT]
import { createServer } from 'node:net'
import { createRequire } from 'node:module'
import { Aedes } from 'aedes'

const require = createRequire(import.meta.url)
const port = Number(process.argv[2])
const redisPort = process.argv[3] ? Number(process.argv[3]) : null
const options = {}
if (redisPort) {
  const persistence = require('aedes-persistence-redis')
  const emitter = require('mqemitter-redis')
  options.persistence = persistence({ host: '127.0.0.1', port: redisPort })
  // No ready check: ioredis sends INFO on (re)connect, which Redis refuses on the connection
  // mqemitter-redis has already put in subscriber mode ("Connection in subscriber mode, only
  // subscriber commands may be used"): a node then died at start-up now and then.
  options.mq = emitter({ host: '127.0.0.1', port: redisPort, enableReadyCheck: false })
}
const broker = await Aedes.createBroker(options)
const server = createServer(broker.handle)
server.listen(port, '127.0.0.1', () => console.log(`aedes listening on ${port}`))
process.on('SIGTERM', () => { server.close(); broker.close(() => process.exit(0)) })
