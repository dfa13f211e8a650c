// A second reference for the poll route: fastify with one route answering fixed bytes, no
// store, no hashing. Shows how much of the route's cost is the framework itself.
// Prints {"port":N} when listening.

import Fastify from 'fastify';

const app = Fastify({ logger: false });
const body = '{"status":{"status_detail":"Waiting_for_order"}}';
app.get('/mp/pos/:posExternalId', async (_req, reply) => reply.code(202).header('content-type', 'application/json; charset=utf-8').send(body));
await app.listen({ host: '127.0.0.1', port: 0 });
console.log(JSON.stringify({ port: (app.server.address() as { port: number }).port }));
