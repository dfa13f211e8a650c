import net from 'node:net';

// A loopback TCP proxy between the agent and the relay that can cut the link at a chosen moment,
// e.g. exactly when the relay's `order.paid` frame passes (server->client WebSocket frames are not
// masked, so the JSON text is visible in the byte stream).

export interface CutRule {
  /** cut when a relay->agent chunk contains this text; the chunk is NOT forwarded */
  downstreamContains?: string;
  /** forward the matching downstream chunk, then cut on the next upstream chunk (the agent's reply) */
  forwardThenCutOnReply?: boolean;
}

export class TcpProxy {
  private server: net.Server;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket }>();
  private rule: CutRule | undefined;
  cuts = 0;
  connections = 0;
  private cutWaiters: Array<() => void> = [];
  /** a relay->agent hold: from the matching chunk on, downstream bytes wait (in order) until released */
  private hold: { contains: string; active: boolean; queue: Array<() => void>; onHeld: () => void } | undefined;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.onClient(client));
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    await new Promise<void>((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    return p;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Arms a one-shot cut; resolves when it has happened. */
  armCut(rule: CutRule): Promise<void> {
    this.rule = rule;
    return new Promise((resolve) => this.cutWaiters.push(resolve));
  }

  /**
   * Delays relay->agent traffic from the first chunk containing `contains` on, keeping the order,
   * as a modem queue does: `held` resolves once something is held, `release()` lets it all through.
   */
  holdDownstream(contains: string): { held: Promise<void>; release: () => void } {
    let onHeld!: () => void;
    const held = new Promise<void>((resolve) => (onHeld = resolve));
    const h = { contains, active: false, queue: [] as Array<() => void>, onHeld };
    this.hold = h;
    return {
      held,
      release: () => {
        if (this.hold === h) this.hold = undefined;
        for (const write of h.queue.splice(0)) write();
      },
    };
  }

  private onClient(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect(this.target.port, this.target.host);
    const pair = { a: client, b: upstream };
    this.pairs.add(pair);
    let cutOnReply = false;
    const cut = () => {
      this.rule = undefined;
      this.cuts++;
      client.destroy();
      upstream.destroy();
      for (const w of this.cutWaiters.splice(0)) w();
    };
    client.on('data', (chunk) => {
      if (cutOnReply) return cut();
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      const r = this.rule;
      if (r?.downstreamContains && chunk.toString('latin1').includes(r.downstreamContains)) {
        if (!r.forwardThenCutOnReply) return cut();
        this.rule = undefined;
        cutOnReply = true;
      }
      const h = this.hold;
      if (h && (h.active || chunk.toString('latin1').includes(h.contains))) {
        if (!h.active) {
          h.active = true;
          h.onHeld();
        }
        h.queue.push(() => client.write(chunk));
        return;
      }
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  }

  async close(): Promise<void> {
    for (const { a, b } of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
