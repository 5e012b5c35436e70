// Why every read of an Express request misses V8's inline caches: a check of hidden classes.
// Usage: node --allow-natives-syntax bench/hidden-classes.mjs
import { createServer, request } from 'node:http'
import express from 'express'

let sameMap
try {
  sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)')
} catch {
  console.error('Run with: node --allow-natives-syntax bench/hidden-classes.mjs')
  process.exit(2)
}

// The V8 behaviour on its own: objects of one class share a hidden class until their prototype
// is changed; each property added after that gives each object a hidden class of its own.
class Message {
  constructor() {
    this.method = 'GET'
    this.url = '/'
  }
}
const prototype = Object.create(Message.prototype)
const pair = () => [new Message(), new Message()]
const [a, b] = pair()
console.log(`two objects of one class share a hidden class: ${sameMap(a, b)}`)
for (const object of [a, b]) Object.setPrototypeOf(object, prototype)
console.log(`after Object.setPrototypeOf to one prototype: ${sameMap(a, b)}`)
for (const object of [a, b]) object.params = {}
console.log(`after one more property on each: ${sameMap(a, b)}`)

// What Express does to every request: it moves the request onto its app's prototype, then
// adds properties (res, next, baseUrl, originalUrl, params, ...).
async function twoRequests(handler) {
  const server = createServer(handler)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  const get = () =>
    new Promise((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/' }, (response) => {
        response.resume()
        response.on('end', resolve)
      })
        .on('error', reject)
        .end()
    })
  await get()
  await get()
  server.close()
}

const plain = []
await twoRequests((req, res) => {
  plain.push(req)
  res.end('ok')
})
console.log(`two requests to Node's own server share a hidden class: ${sameMap(plain[0], plain[1])}`)

const requests = []
const app = express()
app.use((req, _res, next) => {
  requests.push(req)
  next()
})
app.get('/', (_req, res) => res.send('ok'))
await twoRequests(app)
const [first, second] = requests
console.log(`two Express requests share a hidden class: ${sameMap(first, second)}`)
console.log(`their headers objects share one: ${sameMap(first.headers, second.headers)}`)
console.log(`their sockets share one: ${sameMap(first.socket, second.socket)}`)
