import net from 'node:net';
import { chmodSync, chownSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { ensureDir } from '../runtime/dirs.js';
import { dirname } from 'node:path';
import * as z from 'zod/mini';
import '../runtime/zod.js';
import type { Logger } from '../runtime/log.js';

// The technician's door into a running agent: a unix socket (file permissions are the access
// control, no network exposure) speaking one JSON object per line each way.
//   -> {"id":1,"cmd":"status","args":{}}
//   <- {"id":1,"ok":true,"result":{...}}     or {"id":1,"ok":false,"error":"..."}

export const CONTROL_COMMANDS = [
  'status',
  'select',
  'cancel',
  'journal',
  'hardware',
  'test.dispense',
  'test.buttons',
  'test.printer',
  'stock',
  'service',
  'resolve',
  'update.hold',
  'test.mdb-price',
  'dex.read',
  'commands',
] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

export const ControlRequest = z.object({
  id: z.optional(z.union([z.string(), z.number()])),
  cmd: z.enum(CONTROL_COMMANDS),
  args: z._default(z.record(z.string(), z.unknown()), {}),
});
export type ControlRequest = z.output<typeof ControlRequest>;

export type ControlResponse = { id?: string | number; ok: true; result: unknown } | { id?: string | number; ok: false; error: string };

export type ControlHandler = (req: ControlRequest) => unknown;

/**
 * A handler's answer that keeps the connection open and sends events until the client hangs up
 * (`qrkiosk test buttons`). On the wire: the usual answer line with `"stream": true` and the
 * `initial` result, then one `{"id":…,"event":…}` line per event; the agent ends the stream with
 * `{"id":…,"end":"reason"}` when it shuts down. The connection serves nothing else afterwards.
 */
export class ControlStream {
  constructor(
    readonly initial: unknown,
    /** starts sending; returns the function that stops it */
    readonly open: (emit: (event: unknown) => void, end: (reason: string) => void) => () => void,
  ) {}
}

const MAX_LINE = 64 * 1024;

export class ControlError extends Error {
  override name = 'ControlError';
}

/** No agent listening at that path. */
export class ControlUnavailable extends ControlError {
  override name = 'ControlUnavailable';
  constructor(readonly path: string) {
    super(`agent not running? no control socket at ${path}`);
  }
}

/** A group name or gid -> gid (from /etc/group; Node has no getgrnam). */
export function resolveGid(group: string | number, groupFile = '/etc/group'): number {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    /* fall through to the error below */
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new ControlError(`control.group: there is no group "${group}" in ${groupFile}: create it (groupadd ${group}) or use a gid`);
}

/** Is something answering on this unix socket? (also: is another agent running on this kiosk) */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

export class ControlServer {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
  ) {}

  static async start(opts: { path: string; group?: string | number; handler: ControlHandler; logger: Logger }): Promise<ControlServer> {
    const { path, logger } = opts;
    ensureDir(dirname(path), 'the folder of the control socket', ' or set control.socket to another path');
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(path);
    } catch {
      existing = undefined;
    }
    if (existing) {
      if (!existing.isSocket()) throw new ControlError(`refusing to replace ${path}: it is not a socket (set control.socket to another path)`);
      // a socket file left by a killed agent; but if someone answers, a second agent is running
      if (await answers(path)) throw new ControlError(`another agent is already listening on ${path}: stop it first (systemctl stop qrkiosk-agent)`);
      unlinkSync(path);
    }
    const server = net.createServer();
    const cs = new ControlServer(path, server);
    server.on('connection', (sock) => cs.onConnection(sock, opts.handler, logger));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // bind() creates the socket file with 0777 minus the umask: under umask 000 it would be
      // world-writable until the chmod below. listen() binds synchronously, so a umask that removes
      // every "other" bit for the duration of this call closes that window.
      const previous = process.umask(0o117);
      try {
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(previous);
      }
    });
    server.on('error', (err) => logger.error({ err }, 'control socket error'));
    // owner + group read/write; nobody else may press buttons or read the journal
    chmodSync(path, 0o660);
    if (opts.group !== undefined) {
      try {
        chownSync(path, -1, resolveGid(opts.group));
      } catch (err) {
        // not fatal for selling; the technician just cannot use the socket without sudo
        logger.error({ err: (err as Error).message, group: opts.group }, `cannot give the control socket to group ${opts.group}`);
      }
    }
    logger.info({ path }, 'control socket listening');
    return cs;
  }

  private onConnection(sock: net.Socket, handler: ControlHandler, logger: Logger): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let buf = '';
    // one request at a time per connection, answered in order
    let chain = Promise.resolve();
    // once a stream answered, the connection belongs to it
    let streaming = false;
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        sock.end(JSON.stringify({ ok: false, error: 'request line too long' }) + '\n');
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        chain = chain.then(async () => {
          if (streaming) return;
          const res = await answer(line, handler, logger);
          if (sock.destroyed) return;
          if (res.ok && res.result instanceof ControlStream) {
            streaming = true;
            this.stream(sock, res.id, res.result, logger);
            return;
          }
          sock.write(JSON.stringify(res) + '\n');
        });
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.sockets.delete(sock));
  }

  private stream(sock: net.Socket, id: string | number | undefined, s: ControlStream, logger: Logger): void {
    const idPart = id !== undefined ? { id } : {};
    sock.write(JSON.stringify({ ...idPart, ok: true, stream: true, result: s.initial }) + '\n');
    let stopped = false;
    let stop: () => void = () => {};
    const halt = () => {
      if (stopped) return;
      stopped = true;
      try {
        stop();
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'control stream: stopping failed');
      }
    };
    sock.once('close', halt);
    stop = s.open(
      (event) => {
        if (!stopped && !sock.destroyed) sock.write(JSON.stringify({ ...idPart, event }) + '\n');
      },
      (reason) => {
        if (stopped) return;
        halt();
        if (!sock.destroyed) sock.end(JSON.stringify({ ...idPart, end: reason }) + '\n');
      },
    );
    // the client may already have gone while the stream opened
    if (sock.destroyed) halt();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone (net removes it on close on some platforms) */
    }
  }
}

async function answer(line: string, handler: ControlHandler, logger: Logger): Promise<ControlResponse> {
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch {
    return { ok: false, error: 'request is not JSON: send {"cmd":"status"}' };
  }
  const parsed = ControlRequest.safeParse(data);
  if (!parsed.success) {
    const id = (data as { id?: unknown } | null)?.id;
    return {
      ...(typeof id === 'string' || typeof id === 'number' ? { id } : {}),
      ok: false,
      error: `bad request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(request)'}: ${i.message}`).join('; ')} (commands: ${CONTROL_COMMANDS.join(', ')})`,
    };
  }
  const req = parsed.data;
  const idPart = req.id !== undefined ? { id: req.id } : {};
  try {
    const result = await handler(req);
    return { ...idPart, ok: true, result };
  } catch (err) {
    logger.warn({ cmd: req.cmd, err: (err as Error).message }, 'control command failed');
    return { ...idPart, ok: false, error: (err as Error).message };
  }
}

/** Sends one request to the agent and returns its result (throws ControlError on ok:false). */
export async function controlRequest(
  path: string,
  cmd: ControlCommand,
  args: Record<string, unknown> = {},
  opts: { timeoutMs?: number } = {},
): Promise<unknown> {
  const res = await new Promise<ControlResponse>((resolve, reject) => {
    const sock = net.connect(path);
    sock.setEncoding('utf8');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ControlError(`the agent at ${path} did not answer "${cmd}" within ${opts.timeoutMs ?? 10_000} ms`));
    }, opts.timeoutMs ?? 10_000);
    sock.once('connect', () => sock.write(JSON.stringify({ id: 1, cmd, args }) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as ControlResponse);
      } catch {
        reject(new ControlError(`the agent at ${path} answered something that is not JSON`));
      }
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new ControlUnavailable(path));
      else if (err.code === 'EACCES') {
        reject(new ControlError(`permission denied on ${path}: run as the agent's user or join the control.group`));
      } else reject(new ControlError(`cannot talk to the agent at ${path}: ${err.message}`));
    });
    sock.once('close', () => {
      clearTimeout(timer);
      reject(new ControlError(`the agent at ${path} closed the connection without answering`));
    });
  });
  if (!res.ok) throw new ControlError(res.error);
  return res.result;
}

export interface ControlStreamClient {
  /** the agent's first answer (what is being watched) */
  initial: unknown;
  /** how the stream ended: we closed it, the agent ended it (with its reason), or the link broke */
  done: Promise<{ how: 'closed' | 'ended' | 'lost'; reason?: string }>;
  close(): void;
}

/**
 * Opens a streaming command (a ControlStream on the agent side) and calls onEvent for each event
 * until close(). Rejects like controlRequest when the agent refuses or is not there.
 */
export function openControlStream(
  path: string,
  cmd: ControlCommand,
  args: Record<string, unknown>,
  onEvent: (event: unknown) => void,
  opts: { timeoutMs?: number } = {},
): Promise<ControlStreamClient> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    sock.setEncoding('utf8');
    let buf = '';
    let opened = false;
    let closedByUs = false;
    let endReason: string | undefined;
    let finish!: (v: { how: 'closed' | 'ended' | 'lost'; reason?: string }) => void;
    const done = new Promise<{ how: 'closed' | 'ended' | 'lost'; reason?: string }>((r) => (finish = r));
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ControlError(`the agent at ${path} did not answer "${cmd}" within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => sock.write(JSON.stringify({ id: 1, cmd, args }) + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: { ok?: boolean; stream?: boolean; result?: unknown; error?: string; event?: unknown; end?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue;
        }
        if (!opened) {
          clearTimeout(timer);
          if (msg.ok === false) {
            sock.destroy();
            reject(new ControlError(msg.error ?? 'refused'));
            return;
          }
          if (!msg.stream) {
            sock.destroy();
            reject(new ControlError(`the agent answered "${cmd}" without a stream (older agent?)`));
            return;
          }
          opened = true;
          resolve({
            initial: msg.result,
            done,
            close: () => {
              closedByUs = true;
              sock.end();
              sock.destroy();
            },
          });
        } else if (msg.end !== undefined) {
          endReason = msg.end;
        } else if ('event' in msg) {
          onEvent(msg.event);
        }
      }
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (opened) return;
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new ControlUnavailable(path));
      else if (err.code === 'EACCES') reject(new ControlError(`permission denied on ${path}: run as the agent's user or join the control.group`));
      else reject(new ControlError(`cannot talk to the agent at ${path}: ${err.message}`));
    });
    sock.once('close', () => {
      clearTimeout(timer);
      if (!opened) {
        reject(new ControlError(`the agent at ${path} closed the connection without answering`));
        return;
      }
      finish(closedByUs ? { how: 'closed' } : endReason !== undefined ? { how: 'ended', reason: endReason } : { how: 'lost' });
    });
  });
}
