// The floor for an HTTP route: a bare node:http server in its own process answering fixed bytes
// (the same status, content type and body as the route it stands beside). With --sqlite FILE it
// also commits one synced (synchronous=FULL, WAL) insert per request: the floor for a route that
// must store each request durably before it answers. Prints {"port":N} when listening.

import Database from 'better-sqlite3';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { status: { type: 'string', default: '202' }, body: { type: 'string', default: '{"status":{"status_detail":"Waiting_for_order"}}' }, sqlite: { type: 'string' } },
});
const status = Number(values.status);
const body = Buffer.from(values.body!);
let insert: ((s: string) => void) | undefined;
if (values.sqlite) {
  const db = new Database(values.sqlite);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, url TEXT, body TEXT, at INTEGER)');
  const st = db.prepare('INSERT INTO t (url, body, at) VALUES (?, ?, ?)');
  insert = (s) => void st.run(s, '', Date.now());
}

const server = createServer((req, res) => {
  const send = () => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    res.end(body);
  };
  if (!insert) {
    req.resume();
    return send();
  }
  let b = '';
  req.on('data', (d: Buffer) => (b += d.toString()));
  req.on('end', () => {
    insert!((req.url ?? '') + b);
    send();
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (server.address() as { port: number }).port }));
});
