import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../../runtime/log.js';
import type { Buttons, SelectionDetail } from '../buttons.js';
import { DispenserBusy, type Dispenser, type VendOutcome } from '../dispenser.js';
import type { FaultSink } from '../faults.js';
import type { DeviceReport } from '../report.js';
import { LineDevice } from './line-device.js';
import type { OpenPort } from './line-port.js';
import { decodePanelLine, encodeCommand, type PanelMessage, type PanelResult } from './panel-protocol.js';

// The serial button panel / dispenser controller: a microcontroller board with the product
// buttons, the motor drivers and the drop sensor, on one USB serial link (docs/serial-panel.md).
// The board runs the motor/sensor retry loop itself; the agent says "vend slot N as command
// <id>" and waits for the board's result. One object owns the link and hands out two faces,
// `buttons` and `dispenser`, because the agent builds and closes those separately.

export interface SerialPanelOptions {
  path: string;
  baudRate: number;
  /** how often each side sends HB */
  heartbeatMs: number;
  /** no line from the panel for this long = panel silent (logged, shown by `qrkiosk hardware`) */
  heartbeatTimeoutMs: number;
  /** VEND is sent again (same id: the panel never runs an id twice) if not ACKed within this */
  ackTimeoutMs: number;
  /** VEND sends before giving up without an ACK */
  maxSends: number;
  /** after the ACK, how long the panel has to report the result */
  resultTimeoutMs: number;
  reconnect?: { baseMs: number; capMs: number };
  openPort?: OpenPort;
  logger?: Logger;
  /** unplugged / silent / board fault conditions, for `qrkiosk hardware` */
  faults?: FaultSink;
  /** command ids; tests make them predictable */
  newId?: () => string;
}

export const SERIAL_PANEL_DEFAULTS = {
  baudRate: 115200,
  heartbeatMs: 1000,
  heartbeatTimeoutMs: 3500,
  ackTimeoutMs: 1000,
  maxSends: 3,
  resultTimeoutMs: 30_000,
} as const;

export type PanelLink = 'open' | 'down';

export interface SerialPanelHealth {
  driver: 'serial-panel';
  path: string;
  port: string;
  /** silent: the port is open but the board has said nothing for heartbeatTimeoutMs */
  panel: 'ok' | 'silent' | 'fault' | 'unknown';
  panelStatus: string | null;
  boot: string | null;
  lastHeardAt: number | null;
  opens: number;
  disconnects: number;
  rejectedLines: number;
  lastRejected: string | null;
  vending: { id: string; slot: number; acked: boolean } | null;
}

interface PendingVend {
  id: string;
  slot: number;
  /** VEND writes since the last (re)connect, for the give-up rule */
  sends: number;
  /** the VEND left this side at least once: the board may be running it */
  sent: boolean;
  startedAt: number;
  acked: boolean;
  /**
   * the board's boot id when the VEND first went out. A board that restarted has forgotten the
   * id and would run it again, so nothing is re-sent to a board with another boot id.
   */
  boot: string | null;
  /** reconnected: waiting for the board's HB to prove it is the same power-on before re-sending */
  verifyBoot: boolean;
  timer: NodeJS.Timeout | undefined;
  done: (o: VendOutcome) => void;
}

const RESULTS: Record<PanelResult, VendOutcome['result']> = { DROP: 'dispensed', NODROP: 'vend_failed', JAM: 'jammed' };

function defaultId(): string {
  // 8 base-36 characters: ids only need to differ from the panel's last few
  return BigInt(`0x${randomBytes(6).toString('hex')}`).toString(36).toUpperCase().padStart(8, '0').slice(-8);
}

export class SerialPanel extends LineDevice {
  readonly buttons: Buttons & { describe(): DeviceReport };
  readonly dispenser: Dispenser & { describe(): DeviceReport };
  private readonly presses = new EventEmitter();
  private readonly opts: SerialPanelOptions;
  private pending: PendingVend | undefined;
  /** ids this agent already finished: a late or repeated RES for them is logged, never applied */
  private readonly finished = new Map<string, VendOutcome['result']>();
  private hbTimer: NodeJS.Timeout | undefined;
  private hbSeq = 0;
  private silent = false;
  private panelStatus: string | null = null;
  private boot: string | null = null;
  private lastHeardAt: number | null = null;
  /** silence is measured from the last line, or from the (re)open for a board not heard since */
  private openedAt = 0;

  constructor(opts: SerialPanelOptions) {
    super(opts, { link: 'serial panel', logPart: 'serial-panel', device: `serial panel ${opts.path}`, unplugHint: 'check the USB cable' });
    this.opts = opts;
    this.buttons = this.makeButtons();
    this.dispenser = this.makeDispenser();
  }

  protected override onStart(): void {
    this.hbTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
    this.hbTimer.unref?.();
  }

  protected override onDown(): void {
    this.emit('link', 'down' satisfies PanelLink);
  }

  /** `qrkiosk hardware`: one device, shown for the role asking */
  override describe(role: 'buttons' | 'dispenser'): DeviceReport {
    const h = this.health();
    const status: DeviceReport['status'] = h.port !== 'open' ? 'disconnected' : h.panel === 'silent' || h.panel === 'fault' ? 'fault' : 'ok';
    const board =
      h.panel === 'unknown'
        ? 'board not heard yet'
        : `board ${h.boot ?? '?'} ${h.panel === 'silent' ? 'SILENT' : (h.panelStatus ?? '?')}, last heard ${h.lastHeardAt ? `${Math.round((Date.now() - h.lastHeardAt) / 1000)} s ago` : 'never'}`;
    const vend = role === 'dispenser' && h.vending ? `; vending slot ${h.vending.slot} (${h.vending.id}${h.vending.acked ? ', acked' : ''})` : '';
    return {
      role,
      driver: 'serial-panel',
      status,
      detail: `${h.path} @ ${this.opts.baudRate} baud, port ${h.port}; ${board}; ${h.disconnects} disconnect(s), ${h.rejectedLines} rejected line(s)${vend}`,
    };
  }

  health(): SerialPanelHealth {
    const p = this.pending;
    return {
      driver: 'serial-panel',
      path: this.opts.path,
      port: this.link.state,
      panel: this.silent ? 'silent' : this.lastHeardAt === null ? 'unknown' : this.panelStatus && this.panelStatus !== 'OK' ? 'fault' : 'ok',
      panelStatus: this.panelStatus,
      boot: this.boot,
      lastHeardAt: this.lastHeardAt,
      ...this.linkCounts(),
      vending: p ? { id: p.id, slot: p.slot, acked: p.acked } : null,
    };
  }

  override async close(): Promise<void> {
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.hbTimer = undefined;
    if (this.pending) this.settle(this.pending, { result: 'vend_failed', pulses: 0, detail: 'agent stopping before the panel reported a result' });
    await this.link.close();
    this.presses.removeAllListeners();
  }

  // ---- incoming -----------------------------------------------------------------------------------

  protected override onLine(line: string): void {
    const d = decodePanelLine(line);
    if (!d.ok) return this.reject(line, d.reason);
    if (d.skipped) this.reject(d.skipped, 'noise before the frame start');
    this.lastHeardAt = Date.now();
    if (this.silent) {
      this.silent = false;
      this.log?.info('serial panel: talking again');
      this.opts.faults?.clear(this.device, 'silent', 'talking again');
    }
    this.handle(d.msg);
    this.emit('message', d.msg);
  }

  private handle(m: PanelMessage): void {
    switch (m.type) {
      case 'HB': {
        if (this.boot !== null && m.boot !== this.boot) this.log?.warn({ was: this.boot, now: m.boot }, 'serial panel restarted');
        this.boot = m.boot;
        if (m.status !== this.panelStatus) {
          if (m.status === 'OK') {
            this.log?.info('serial panel status OK');
            this.opts.faults?.clear(this.device, 'fault', 'board reports OK');
          } else {
            this.log?.warn({ status: m.status }, `serial panel reports fault ${m.status}`);
            this.opts.faults?.condition(this.device, 'fault', `the board reports ${m.status} (docs/serial-panel.md)`);
          }
        }
        this.panelStatus = m.status;
        const p = this.pending;
        if (p?.sent) {
          if (p.boot !== null && p.boot !== m.boot) {
            // the board may have turned the motor before it restarted, and it has forgotten the id
            this.settle(p, { result: 'vend_failed', pulses: 0, detail: 'panel restarted during the vend: outcome unknown, not retried' });
            return;
          }
          if (p.verifyBoot) {
            if (p.boot === null) {
              this.settle(p, { result: 'vend_failed', pulses: 0, detail: 'reconnected during the vend and the panel had never said its boot id: outcome unknown, not retried' });
              return;
            }
            // same power-on: the board still knows the id, so asking again cannot vend twice
            p.verifyBoot = false;
            p.acked = false;
            p.sends = 0;
            this.send(p);
          } else p.boot ??= m.boot;
        }
        return;
      }
      case 'SEL':
        this.presses.emit('press', m.slot, { source: 'serial-panel' } satisfies SelectionDetail);
        return;
      case 'CAN':
        this.presses.emit('cancel');
        return;
      case 'ACK': {
        const p = this.pending;
        if (!p || p.id !== m.id) return void this.log?.warn({ id: m.id }, 'serial panel: ACK for a command that is not open, ignored');
        if (!p.acked) {
          p.acked = true;
          this.arm(p, this.opts.resultTimeoutMs, () =>
            this.settle(p, { result: 'vend_failed', pulses: 0, detail: `panel accepted the vend but reported no result within ${this.opts.resultTimeoutMs} ms` }),
          );
        }
        return;
      }
      case 'NAK': {
        const p = this.pending;
        if (!p || p.id !== m.id) return void this.log?.warn({ id: m.id }, 'serial panel: NAK for a command that is not open, ignored');
        this.settle(p, { result: 'vend_failed', pulses: 0, detail: `panel refused the vend (${m.reason}); nothing moved` });
        return;
      }
      case 'RES': {
        const p = this.pending;
        if (!p || p.id !== m.id) {
          const before = this.finished.get(m.id);
          if (before) {
            if (RESULTS[m.result] !== before) {
              this.log?.error({ id: m.id, reported: m.result, recorded: before }, 'serial panel: a late result contradicts the one already reported to the relay');
            } else this.log?.debug({ id: m.id }, 'serial panel: repeated result ignored');
          } else this.log?.warn({ id: m.id }, 'serial panel: result for an unknown command, ignored');
          return;
        }
        this.settle(p, { result: RESULTS[m.result], pulses: m.pulses, ...(m.result === 'DROP' ? {} : { detail: `panel reports ${m.result} after ${m.pulses} pulse(s)` }) });
        return;
      }
    }
  }

  // ---- outgoing -----------------------------------------------------------------------------------

  protected override onOpen(): void {
    this.openedAt = Date.now();
    this.emit('link', 'open' satisfies PanelLink);
    this.heartbeat();
    // A VEND (or its ACK/RES) may have died with the old connection. It goes again with the same
    // id (the panel runs an id at most once and answers a repeat with the outcome it has) but
    // only after the board's heartbeat shows the same boot id: a USB-powered board that was
    // unplugged has restarted and forgotten every id.
    const p = this.pending;
    if (!p) return;
    if (p.sent) {
      p.verifyBoot = true;
      if (!p.acked) this.arm(p, this.opts.ackTimeoutMs, () => this.send(p));
    } else this.send(p);
  }

  private heartbeat(): void {
    if (!this.link.isOpen) return;
    this.link.write(encodeCommand({ type: 'HB', seq: this.hbSeq++ % 1_000_000_000 }));
    const heard = this.lastHeardAt;
    // a board never heard since the port opened is silent too (wrong baud rate, TX/RX swapped)
    if (!this.silent && Date.now() - Math.max(heard ?? 0, this.openedAt) > this.opts.heartbeatTimeoutMs) {
      this.silent = true;
      this.opts.faults?.condition(this.device, 'silent', `port open but the board has said nothing for ${this.opts.heartbeatTimeoutMs} ms (firmware hung? wrong baud rate?)`);
      this.log?.warn({ lastHeardAt: heard }, `serial panel silent for more than ${this.opts.heartbeatTimeoutMs} ms (port open, board not answering)`);
    }
  }

  private send(p: PendingVend): void {
    if (p.verifyBoot) {
      // nothing goes out until the board's heartbeat says whether re-sending is safe
      if (Date.now() - p.startedAt > this.opts.resultTimeoutMs) {
        this.settle(p, { result: 'vend_failed', pulses: 0, detail: `panel unreachable for ${this.opts.resultTimeoutMs} ms; outcome unknown` });
      } else if (!p.acked) this.arm(p, this.opts.ackTimeoutMs, () => this.send(p));
      return;
    }
    if (!p.acked) {
      if (p.sends >= this.opts.maxSends) {
        // the VEND may have arrived and only the ACK got lost: the outcome is not known
        this.settle(p, { result: 'vend_failed', pulses: 0, detail: `panel did not acknowledge the vend after ${p.sends} send(s); outcome unknown` });
        return;
      }
      if (Date.now() - p.startedAt > this.opts.resultTimeoutMs) {
        this.settle(p, { result: 'vend_failed', pulses: 0, detail: `panel unreachable for ${this.opts.resultTimeoutMs} ms; outcome unknown` });
        return;
      }
    }
    if (this.link.write(encodeCommand({ type: 'VEND', id: p.id, slot: p.slot }))) {
      if (!p.sent) p.boot = this.boot;
      p.sent = true;
      p.sends++;
    }
    if (!p.acked) this.arm(p, this.opts.ackTimeoutMs, () => this.send(p));
  }

  private arm(p: PendingVend, ms: number, fn: () => void): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      p.timer = undefined;
      if (this.pending === p) fn();
    }, ms);
  }

  private settle(p: PendingVend, o: VendOutcome): void {
    if (this.pending !== p) return;
    if (p.timer) clearTimeout(p.timer);
    this.pending = undefined;
    this.finished.set(p.id, o.result);
    if (this.finished.size > 32) this.finished.delete(this.finished.keys().next().value!);
    this.log?.info({ id: p.id, slot: p.slot, ...o }, `serial panel vend ${p.id}: ${o.result}`);
    p.done(o);
  }

  // ---- faces --------------------------------------------------------------------------------------

  private makeButtons(): Buttons & { describe(): DeviceReport } {
    return this.buttonsFace(
      {
        onPress: (listener: (slot: number, detail?: SelectionDetail) => unknown) => {
          this.presses.on('press', listener);
          return () => this.presses.off('press', listener);
        },
        onCancel: (listener: () => void) => {
          this.presses.on('cancel', listener);
          return () => this.presses.off('cancel', listener);
        },
      },
      () => this.presses.removeAllListeners(),
    );
  }

  private makeDispenser(): Dispenser & { describe(): DeviceReport } {
    // the board owns its motor outputs and stops them itself
    return this.dispenserFace((slot: number) => {
      // one vend at a time: the relay paid for one product
      if (this.pending) return Promise.reject(new DispenserBusy('serial panel is already vending'));
      this.start();
      return new Promise<VendOutcome>((resolve) => {
        const p: PendingVend = { id: (this.opts.newId ?? defaultId)(), slot,
          sends: 0,
          sent: false,
          startedAt: Date.now(),
          acked: false,
          boot: null,
          verifyBoot: false,
          timer: undefined,
          done: resolve,
        };
        this.pending = p;
        this.log?.info({ id: p.id, slot }, `serial panel: vend slot ${slot} as command ${p.id}`);
        this.send(p);
      });
    });
  }
}
