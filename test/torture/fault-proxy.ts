import net from 'node:net';
import type { Prng } from './prng.js';

// A loopback TCP proxy of our own that misbehaves on purpose, for the network torture suite: it
// sits between agent and relay, between relay and Mercado Pago, and between Mercado Pago and the
// relay's public routes. For every chunk that passes it asks its seeded stream what to do:
//
//   pass      forward as is
//   delay     hold this chunk (and, to keep byte order, every later one in that direction) for a while
//   drop      close both sides cleanly (FIN), as a NAT or a load balancer dropping a flow
//   reset     close both sides with RST
//   halfopen  stop forwarding in both directions but keep both sockets open: the peers see a link
//             that is up and silent, and must find out by themselves (pings, request timeouts)
//
// Decisions are taken per connection (its own stream, forked by connection number) and per chunk
// index, not by the clock, so a seed replays the same faults in the same order as far as TCP cuts
// the byte stream into the same chunks.

export type NetFault = 'delay' | 'drop' | 'reset' | 'halfopen';

export interface FaultProxyOptions {
  name: string;
  target: { host: string; port: number };
  prng: Prng;
  /** chance per chunk that a fault happens (0 = a plain proxy) */
  faultRate: number;
  /** relative weights of the faults */
  weights?: Partial<Record<NetFault, number>>;
  /** longest delay of a held chunk (the worst case is 30 s) */
  maxDelayMs: number;
}

export class FaultProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private conn = 0;
  /** faults injected so far, by kind */
  readonly injected: Record<NetFault, number> = { delay: 0, drop: 0, reset: 0, halfopen: 0 };
  enabled = true;
  connections = 0;

  private constructor(private readonly o: FaultProxyOptions) {
    this.server = net.createServer((client) => this.onClient(client));
  }

  static async start(o: FaultProxyOptions, port = 0): Promise<FaultProxy> {
    const p = new FaultProxy(o);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(port, '127.0.0.1', () => resolve());
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get faultCount(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  /** Stops injecting faults and ends the links that are held silent, so the system can settle. */
  heal(): void {
    this.enabled = false;
    for (const s of this.sockets) if ((s as net.Socket & { halfOpen?: boolean }).halfOpen) s.destroy();
  }

  /** Injects faults again (after heal). */
  harm(): void {
    this.enabled = true;
  }

  private onClient(client: net.Socket): void {
    const n = ++this.conn;
    this.connections++;
    const prng = this.o.prng.fork(`${this.o.name}:conn${n}`);
    const upstream = net.connect(this.o.target.port, this.o.target.host);
    const pair = [client, upstream] as const;
    for (const s of pair) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    let dead = false;
    let silent = false;
    const end = (how: 'drop' | 'reset' | 'close') => {
      if (dead) return;
      dead = true;
      for (const s of pair) {
        if (how === 'reset' && typeof s.resetAndDestroy === 'function' && !s.connecting) s.resetAndDestroy();
        else if (how === 'drop') s.end(() => s.destroy());
        else s.destroy();
      }
    };
    const weights = this.o.weights ?? {};
    const table: Array<[NetFault, number]> = (['delay', 'drop', 'reset', 'halfopen'] as const).map((f) => [f, weights[f] ?? 1]);
    const pipe = (from: net.Socket, to: net.Socket) => {
      // chunks wait here while an earlier one of this direction is held, so byte order is kept
      let heldUntil = 0;
      const queue: Buffer[] = [];
      let flushing: NodeJS.Timeout | undefined;
      const schedule = (ms: number) => {
        flushing = setTimeout(() => {
          this.timers.delete(flushing!);
          flush();
        }, ms);
        this.timers.add(flushing);
      };
      const flush = () => {
        flushing = undefined;
        if (dead || silent) return;
        const wait = heldUntil - Date.now();
        if (wait > 0) return schedule(wait);
        while (queue.length) to.write(queue.shift()!);
      };
      from.on('data', (chunk: Buffer) => {
        if (dead || silent) return;
        if (this.enabled && prng.chance(this.o.faultRate)) {
          const fault = prng.weighted(table);
          this.injected[fault]++;
          if (fault === 'drop' || fault === 'reset') return end(fault);
          if (fault === 'halfopen') {
            silent = true;
            for (const s of pair) (s as net.Socket & { halfOpen?: boolean }).halfOpen = true;
            return;
          }
          const ms = prng.int(1, this.o.maxDelayMs);
          heldUntil = Math.max(heldUntil, Date.now() + ms);
        }
        queue.push(chunk);
        if (!flushing) flush();
      });
      from.on('end', () => {
        if (!dead && !silent && queue.length === 0) to.end();
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
    // a silent (half-open) link stays open on the other side: that peer must notice by itself
    client.on('close', () => silent || end('close'));
    upstream.on('close', () => silent || end('close'));
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
