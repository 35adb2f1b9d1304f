/**
 * The floor under bench:rates: a bare Fastify server (the collector's own
 * HTTP stack) that reads each request and answers a small JSON reply, with
 * nothing else in the process. What it costs per request at a rate is what
 * any Node.js collector pays on this machine before doing any work: at low
 * rates most of it is waking an idle process (and its vCPU) per request.
 * Prints its URL as one JSON line.
 */
import Fastify from 'fastify'

const app = Fastify()
app.addContentTypeParser('application/x-ndjson', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
app.post('/v1/activities', async (request) => ({ accepted: String(request.body).split('\n').length, rejected: 0, ids: [], errors: [] }))
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
console.log(JSON.stringify({ url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` }))
