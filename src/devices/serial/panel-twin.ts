import { EventEmitter } from 'node:events';
import type { LineEnd } from './line-port.js';
import { decodeCommandLine, encodePanel, type PanelMessage, type PanelResult } from './panel-protocol.js';

// A simulated serial panel board, following docs/serial-panel.md from the board's side. It sits
// on any line link (the far end of a pty pair, a binding-mock port) and is what the tests, and a
// firmware author reading them, use as the reference behaviour. In particular it runs each VEND
// id at most once and answers a repeated id with the outcome it already has.

export interface PanelTwinOptions {
  boot?: string;
  /** what a VEND of this slot does (default DROP after 1 pulse) */
  outcome?: (slot: number) => { result: PanelResult; pulses: number };
  /** ms between the ACK and the RES */
  vendMs?: number;
  /** slots that exist (a VEND of another one is NAKed SLOT) */
  slots?: number[];
}

export class PanelTwin extends EventEmitter {
  boot: string;
  /** every motor run, in order: the tests count these to prove "once" */
  readonly vends: Array<{ id: string; slot: number }> = [];
  readonly commands: string[] = [];
  readonly rejected: string[] = [];
  /** VEND ids seen, with their result once known */
  private readonly known = new Map<string, { result: PanelResult; pulses: number } | null>();
  private hb: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** when set, the board hears commands but does not answer (lost ACKs, a hung firmware) */
  mute = false;
  /** when set, the next RES is not sent (lost with an unplug); the board still knows it */
  swallowNextResult = false;

  constructor(
    private readonly end: LineEnd,
    private readonly opts: PanelTwinOptions = {},
  ) {
    super();
    this.boot = opts.boot ?? 'B007';
    end.on('line', (l) => this.onLine(l));
  }

  send(m: PanelMessage): boolean {
    return this.end.write(encodePanel(m));
  }

  sendRaw(line: string): boolean {
    return this.end.write(line);
  }

  press(slot: number): boolean {
    return this.send({ type: 'SEL', slot });
  }

  cancel(): boolean {
    return this.send({ type: 'CAN' });
  }

  heartbeat(status = 'OK'): boolean {
    return this.send({ type: 'HB', boot: this.boot, status });
  }

  startHeartbeat(ms: number): void {
    this.stopHeartbeat();
    this.heartbeat();
    this.hb = setInterval(() => this.heartbeat(), ms);
  }

  stopHeartbeat(): void {
    if (this.hb) clearInterval(this.hb);
    this.hb = undefined;
  }

  /** Power cycle: a new boot id, every VEND id forgotten. */
  reboot(boot: string): void {
    this.boot = boot;
    this.known.clear();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  close(): void {
    this.stopHeartbeat();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private onLine(line: string): void {
    const d = decodeCommandLine(line);
    if (!d.ok) {
      this.rejected.push(line);
      this.emit('rejected', line, d.reason);
      return;
    }
    this.commands.push(line);
    this.emit('command', d.msg);
    if (d.msg.type !== 'VEND' || this.mute) return;
    const { id, slot } = d.msg;
    if (this.known.has(id)) {
      // a repeat: never a second motor run
      this.send({ type: 'ACK', id });
      const r = this.known.get(id);
      if (r) this.send({ type: 'RES', id, ...r });
      return;
    }
    if (this.opts.slots && !this.opts.slots.includes(slot)) {
      this.send({ type: 'NAK', id, reason: 'SLOT' });
      return;
    }
    this.known.set(id, null);
    this.send({ type: 'ACK', id });
    this.vends.push({ id, slot });
    this.emit('vend', id, slot);
    const r = this.opts.outcome?.(slot) ?? { result: 'DROP' as const, pulses: 1 };
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.known.set(id, r);
      if (this.swallowNextResult) {
        this.swallowNextResult = false;
        this.emit('swallowed', id);
        return;
      }
      this.send({ type: 'RES', id, ...r });
    }, this.opts.vendMs ?? 5);
    this.timers.add(t);
  }
}
