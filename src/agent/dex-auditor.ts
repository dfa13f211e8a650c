import { randomBytes } from 'node:crypto';
import { frame } from '../protocol/codec.js';
import { AgentMessage, type DexAuditFrame } from '../protocol/messages.js';
import type { Logger } from '../runtime/log.js';
import type { FaultSink } from '../devices/faults.js';
import type { DexAudit } from '../devices/dex/eva-dts.js';
import type { DexReadOptions, DexReadResult } from '../devices/dex/reader.js';
import type { DexConfig } from '../devices/serial/config.js';
import type { DeviceReport } from '../devices/report.js';
import type { Journal } from './journal.js';

// Reads the machine's audit over its DEX port on a schedule and on `qrkiosk dex read`, and puts
// it in the outbox as dex.audit: the relay gets it once, whenever the link allows, and keeps it
// beside qrkiosk's own sales. One read at a time (the port is opened only for the read).

export interface DexReadSummary {
  auditId: string;
  protocol: 'dex' | 'ddcmp';
  machine: string;
  products: number;
  events: number;
  blocks: number;
  retries: number;
  ms: number;
  truncated: boolean;
}

export interface DexAuditorDeps {
  config: DexConfig;
  journal: Journal;
  /** push the outbox now */
  flush(): void;
  logger: Logger;
  faults?: FaultSink;
  /** which MDB cashless device qrkiosk is on this machine, null when not on MDB */
  cashlessDevice: 1 | 2 | null;
  /** tests: a pty's opener or a fake reader */
  read?: (opts: DexReadOptions) => Promise<DexReadResult>;
  now?: () => number;
}

const MAX_PRODUCTS = 300;
const MAX_EVENTS = 100;
const cut = (s: string | null, n: number) => (s === null ? null : s.slice(0, n));

/** The dex.audit frame body for a parsed audit (capped to fit one frame). */
export function auditFrameBody(
  audit: DexAudit,
  meta: { auditId: string; readAt: number; protocol: 'dex' | 'ddcmp'; cashlessDevice: 1 | 2 | null },
): Omit<DexAuditFrame, 'v' | 'id'> {
  const products = audit.products.slice(0, MAX_PRODUCTS).map((p) => ({
    selection: p.selection.slice(0, 20),
    price: p.price,
    productId: cut(p.productId, 40),
    countSinceInit: p.paid?.countSinceInit ?? null,
    valueSinceInit: p.paid?.valueSinceInit ?? null,
    countSinceReset: p.paid?.countSinceReset ?? null,
    valueSinceReset: p.paid?.valueSinceReset ?? null,
  }));
  const events = audit.events.slice(0, MAX_EVENTS).map((e) => ({ ...e, code: e.code, date: cut(e.date, 6), time: cut(e.time, 6), name: cut(e.name, 60) }));
  return {
    type: 'dex.audit',
    ...meta,
    machine: {
      serial: audit.machine.serial.slice(0, 40),
      model: cut(audit.machine.model, 40),
      location: cut(audit.machine.location, 60),
      asset: cut(audit.machine.asset, 40),
    },
    decimals: audit.decimals,
    currency: cut(audit.currency?.alpha ?? null, 3),
    paid: audit.paid,
    cash: audit.cash,
    cashless1: audit.cashless.device1,
    cashless2: audit.cashless.device2,
    products,
    events,
    truncated: audit.products.length > MAX_PRODUCTS || audit.events.length > MAX_EVENTS,
  };
}

export class DexAuditor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<DexReadSummary> | undefined;
  private closed = false;
  private readonly log: Logger;
  private readonly device: string;
  private last: { at: number; ok: boolean; text: string } | null = null;

  constructor(private readonly deps: DexAuditorDeps) {
    this.log = deps.logger.child({ part: 'dex' });
    this.device = `DEX port ${deps.config.path}`;
  }

  start(): void {
    const every = this.deps.config.everyMinutes;
    if (every <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.read().catch(() => {
        /* logged and raised as a fault in read() */
      });
    }, every * 60_000);
    this.timer.unref();
  }

  /** One audit read; a read already running is joined, not doubled. */
  read(): Promise<DexReadSummary> {
    if (this.closed) return Promise.reject(new Error('the agent is stopping'));
    this.running ??= this.readOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async readOnce(): Promise<DexReadSummary> {
    const c = this.deps.config;
    const now = this.deps.now ?? Date.now;
    let r: DexReadResult;
    try {
      // the reader (and serialport under it) is loaded at the first read, not by every agent
      const read = this.deps.read ?? (await import('../devices/dex/reader.js')).readAudit;
      r = await read({ path: c.path, protocol: c.protocol, answerMs: c.answerMs, passCode: c.passCode });
    } catch (err) {
      const msg = (err as Error).message;
      this.log.warn({ err: msg }, `dex: audit read failed: ${msg}`);
      this.deps.faults?.condition(this.device, 'read', msg);
      this.last = { at: now(), ok: false, text: msg };
      throw err;
    }
    this.deps.faults?.clear(this.device, 'read', 'audit read');
    const auditId = `dex_${randomBytes(12).toString('base64url')}`;
    const body = auditFrameBody(r.audit, { auditId, readAt: now(), protocol: r.protocol, cashlessDevice: this.deps.cashlessDevice });
    // checked here: a frame the relay would refuse would sit in the outbox forever
    const f = AgentMessage.parse(frame(body));
    this.deps.journal.enqueue(f);
    this.deps.flush();
    const summary: DexReadSummary = {
      auditId,
      protocol: r.protocol,
      machine: r.audit.machine.serial,
      products: r.audit.products.length,
      events: r.audit.events.length,
      blocks: r.blocks,
      retries: r.retries,
      ms: r.ms,
      truncated: body.truncated,
    };
    this.last = { at: now(), ok: true, text: `machine ${summary.machine} over ${r.protocol}, ${summary.products} selections (${auditId})` };
    this.log.info(summary, `dex: audit of machine ${summary.machine} read (${r.protocol}, ${summary.products} selections): queued for the relay`);
    return summary;
  }

  /** `qrkiosk hardware` */
  describe(): DeviceReport {
    const c = this.deps.config;
    const when = (t: number) => new Date(t).toISOString().slice(0, 16).replace('T', ' ');
    const last = this.last ? `; last read ${when(this.last.at)} UTC: ${this.last.ok ? this.last.text : `FAILED: ${this.last.text}`}` : '; not read yet';
    return {
      role: 'audit',
      driver: 'dex',
      status: this.last && !this.last.ok ? 'fault' : 'ok',
      detail: `${c.path}, ${c.protocol}, ${c.everyMinutes > 0 ? `every ${c.everyMinutes} min` : 'on qrkiosk dex read only'}${last}`,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
