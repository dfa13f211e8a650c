import type { Logger } from '../../runtime/log.js';
import { isSelectionAnswer, type Buttons, type OrderChange, type SelectionAnswer, type SelectionDetail } from '../buttons.js';
import { DispenserBusy, type Dispenser, type VendOutcome } from '../dispenser.js';
import type { FaultSink } from '../faults.js';
import type { DeviceReport } from '../report.js';
import { LineDevice } from '../serial/line-device.js';
import type { OpenPort } from '../serial/line-port.js';
import { Commands, parseBoardLine, type BoardLine, type CashlessState } from './qibixx.js';

// An MDB vending machine retrofitted with a Qibixx board in cashless-slave mode. The machine
// keeps its keypad, its prices and its motors; qrkiosk is its "card reader":
//
//   machine keypad  -> c,STATUS,VEND,<price>,<item>  -> a selection (buttons face), priced by the
//                      session from the catalog and checked against the machine's price
//   relay: paid     -> session calls dispenser.vend -> C,VEND,<price> (approve)
//   machine result  -> c,VEND,SUCCESS = dispensed, c,ERR,VEND n = vend_failed (refund)
//   cancel/expiry   -> C,STOP (deny), so the machine stops waiting for credit
//
// The machine, not the Pi, turns the motor: only c,VEND,SUCCESS means the customer got the
// product. Approval is sent at most once per request; nothing is re-sent after a reconnect.

export interface MdbOptions {
  path: string;
  baudRate: number;
  /** machine item number -> slot; absent: item N is slot N */
  items?: ReadonlyMap<number, number>;
  /** decimal; absent = the machine's price must equal the catalog's */
  trustMachinePriceWithin?: string;
  /** after approving, how long the machine has to report the vend result */
  resultTimeoutMs: number;
  reconnect?: { baseMs: number; capMs: number };
  openPort?: OpenPort;
  logger?: Logger;
  /** unplugged / board error conditions, for `qrkiosk hardware` */
  faults?: FaultSink;
}

export const MDB_DEFAULTS = { baudRate: 115200, resultTimeoutMs: 60_000 } as const;

type Phase =
  | { kind: 'idle' }
  | { kind: 'requested'; item: number; price: string; slot: number; orderId: string | null; at: number }
  | {
      kind: 'approved';
      item: number;
      price: string;
      slot: number;
      orderId: string | null;
      timer: NodeJS.Timeout;
      done: (o: VendOutcome) => void;
    };

export interface MdbHealth {
  driver: 'mdb';
  path: string;
  port: string;
  /** the cashless state the board last reported */
  board: CashlessState | null;
  phase: 'idle' | 'requested' | 'approved';
  request: { item: number; price: string; slot: number; orderId: string | null } | null;
  lastVend: { item: number; price: string; result: VendOutcome['result']; at: number } | null;
  opens: number;
  disconnects: number;
  rejectedLines: number;
  lastRejected: string | null;
  lastError: string | null;
}

/** Order states in which the machine's request must be denied. */
const DENY_ON = new Set(['cancelled', 'rejected', 'not_dispensed']);

export class MdbCashless extends LineDevice {
  readonly buttons: Buttons & { describe(): DeviceReport };
  readonly dispenser: Dispenser & { describe(): DeviceReport };
  private readonly opts: MdbOptions;
  private readonly pressListeners = new Set<(slot: number, detail?: SelectionDetail) => unknown>();
  private readonly cancelListeners = new Set<() => void>();
  private phase: Phase = { kind: 'idle' };
  private board: CashlessState | null = null;
  /** the board may have reset while a vend was out: enable it again once the vend is settled */
  private initPending = false;
  private lastInitAt = 0;
  private lastVend: MdbHealth['lastVend'] = null;
  private lastError: string | null = null;

  constructor(opts: MdbOptions) {
    super(opts, { link: 'mdb', logPart: 'mdb', device: `MDB interface ${opts.path}`, unplugHint: 'check the MDB-USB cable or the HAT' });
    this.opts = opts;
    this.buttons = this.makeButtons();
    this.dispenser = this.makeDispenser();
  }

  /** `qrkiosk hardware` */
  override describe(role: 'buttons' | 'dispenser'): DeviceReport {
    const h = this.health();
    const enabled = h.board === 'ENABLED' || h.board === 'IDLE' || h.board === 'VEND';
    const status: DeviceReport['status'] = h.port !== 'open' ? 'disconnected' : enabled ? 'ok' : 'fault';
    const board = h.board ? `cashless ${h.board.toLowerCase()}` : 'no status from the board yet';
    const req = h.request ? `; machine asks ${h.request.price} for item ${h.request.item} (slot ${h.request.slot}, ${h.phase})` : '';
    const last = role === 'dispenser' && h.lastVend ? `; last vend item ${h.lastVend.item}: ${h.lastVend.result}` : '';
    const what = role === 'buttons' ? 'the machine keypad selects' : 'the machine vends after approval';
    return {
      role,
      driver: 'mdb',
      status,
      detail: `${h.path} @ ${this.opts.baudRate} baud, port ${h.port}; ${board}; ${what}${req}${last}${h.lastError ? `; last board error: ${h.lastError}` : ''}`,
    };
  }

  health(): MdbHealth {
    const p = this.phase;
    return {
      driver: 'mdb',
      path: this.opts.path,
      port: this.link.state,
      board: this.board,
      phase: p.kind,
      request: p.kind === 'idle' ? null : { item: p.item, price: p.price, slot: p.slot, orderId: p.orderId },
      lastVend: this.lastVend,
      ...this.linkCounts(),
      lastError: this.lastError,
    };
  }

  override async close(): Promise<void> {
    const p = this.phase;
    if (p.kind === 'approved') this.settle({ result: 'vend_failed', pulses: 1, detail: 'agent stopping before the machine reported the vend result' });
    else if (p.kind === 'requested') this.deny('agent stopping');
    await this.link.close();
    this.pressListeners.clear();
    this.cancelListeners.clear();
  }

  /** The slot a machine item sells from, or undefined when the item is not for sale here. */
  slotOf(item: number): number | undefined {
    if (this.opts.items) return this.opts.items.get(item);
    return item >= 1 ? item : undefined;
  }

  // ---- board -> agent -----------------------------------------------------------------------------

  protected override onLine(line: string): void {
    const m = parseBoardLine(line);
    if (m.kind === 'garbled') return this.reject(line, m.reason);
    this.handle(m);
    this.emit('board', m);
  }

  private handle(m: Exclude<BoardLine, { kind: 'garbled' }>): void {
    switch (m.kind) {
      case 'status': {
        const was = this.board;
        this.board = m.state;
        if (was !== m.state) this.log?.info({ from: was, to: m.state }, `mdb: cashless ${m.state.toLowerCase()}`);
        if (this.phase.kind === 'requested') {
          // the machine left the vend state before we approved: its customer cancelled, or it
          // stopped waiting for credit. The order must not be paid for any more.
          this.withdrawn(`machine left the vend request (c,STATUS,${m.state})`);
        }
        return;
      }
      case 'vend_request':
        return this.onRequest(m.price, m.item);
      case 'vend_success':
      case 'vend_failure': {
        const text = m.kind === 'vend_success' ? 'c,VEND,SUCCESS' : `c,ERR,VEND ${m.code}`;
        if (this.phase.kind !== 'approved') {
          this.log?.error({ report: text, phase: this.phase.kind }, 'mdb: a vend result with no approved vend open (after a timeout?): ignored');
          return;
        }
        if (m.kind === 'vend_success') this.settle({ result: 'dispensed', pulses: 1 });
        else this.settle({ result: 'vend_failed', pulses: 1, detail: `machine reported vend failure (${text})` });
        return;
      }
      case 'error': {
        this.lastError = m.text;
        this.log?.warn({ error: m.text }, `mdb: board error ${m.text}`);
        if (/cashless is off/i.test(m.text) && this.phase.kind === 'idle') this.init('board says cashless is off', true);
        return;
      }
      case 'other':
        this.log?.debug({ line: m.text }, 'mdb: board line not used');
        return;
    }
  }

  private onRequest(price: string, item: number): void {
    const p = this.phase;
    if (p.kind === 'approved') {
      this.log?.error({ item, price, approvedItem: p.item }, 'mdb: a new vend request while an approved vend has no result yet: ignored');
      return;
    }
    if (p.kind === 'requested') this.withdrawn(`machine replaced item ${p.item} with item ${item}`);
    const slot = this.slotOf(item);
    if (slot === undefined) {
      this.log?.warn({ item, price }, `mdb: item ${item} is not mapped to a slot (hardware.mdb.items): denying`);
      this.link.write(Commands.deny);
      return;
    }
    const detail: SelectionDetail = {
      source: 'mdb',
      item,
      machinePrice: price,
      ...(this.opts.trustMachinePriceWithin !== undefined ? { trustMachinePriceWithin: this.opts.trustMachinePriceWithin } : {}),
    };
    const req: Extract<Phase, { kind: 'requested' }> = { kind: 'requested', item, price, slot, orderId: null, at: Date.now() };
    this.phase = req;
    this.log?.info({ item, price, slot }, `mdb: machine asks ${price} for item ${item} (slot ${slot})`);
    let answer: SelectionAnswer | undefined;
    for (const l of [...this.pressListeners]) {
      try {
        const a = l(slot, detail);
        if (isSelectionAnswer(a) && (!answer || (a.ok && !answer.ok))) answer = a;
      } catch (err) {
        this.log?.error({ err: (err as Error).message }, 'mdb: selection listener failed');
      }
    }
    if (this.phase !== req) return; // withdrawn while the listener ran
    if (answer?.ok && answer.orderId) {
      req.orderId = answer.orderId;
      return;
    }
    this.deny(answer ? `selection refused: ${answer.reason ?? ''} ${answer.message ?? ''}`.trim() : 'nobody took the selection');
  }

  // ---- agent -> board -----------------------------------------------------------------------------

  protected override onOpen(): void {
    if (this.phase.kind === 'approved') {
      // do not reset the board while the machine may still report this vend's result
      this.initPending = true;
      return;
    }
    if (this.phase.kind === 'requested') {
      // the board may have lost the request with the connection: no approval can follow it
      this.withdrawn('MDB interface reconnected during the request');
      this.link.write(Commands.deny);
    }
    this.init('port opened');
  }

  private init(why: string, rateLimited = false): void {
    const now = Date.now();
    // a board repeating "cashless is off" must not be answered with an enable storm
    if (rateLimited && now - this.lastInitAt < 2000) return;
    this.lastInitAt = now;
    this.initPending = false;
    this.log?.info({ why }, 'mdb: enabling the cashless slave (C,0, C,1)');
    this.link.write(Commands.disable);
    this.link.write(Commands.enable);
  }

  /** Deny the open request (C,STOP) and forget it. */
  private deny(why: string): void {
    const p = this.phase;
    if (p.kind !== 'requested') return;
    this.phase = { kind: 'idle' };
    const sent = this.link.write(Commands.deny);
    this.log?.info({ item: p.item, price: p.price, orderId: p.orderId, sent }, `mdb: denied item ${p.item}: ${why}`);
    this.emit('denied', p.item, why);
  }

  /** The machine (or the link) ended the request: cancel the order, nothing to send. */
  private withdrawn(why: string): void {
    const p = this.phase;
    if (p.kind !== 'requested') return;
    this.phase = { kind: 'idle' };
    this.log?.info({ item: p.item, orderId: p.orderId }, `mdb: request withdrawn: ${why}`);
    if (p.orderId) for (const l of [...this.cancelListeners]) l();
    this.emit('withdrawn', p.item, why);
  }

  private settle(o: VendOutcome): void {
    const p = this.phase;
    if (p.kind !== 'approved') return;
    clearTimeout(p.timer);
    this.phase = { kind: 'idle' };
    this.lastVend = { item: p.item, price: p.price, result: o.result, at: Date.now() };
    this.log?.info({ item: p.item, slot: p.slot, orderId: p.orderId, ...o }, `mdb: vend of item ${p.item}: ${o.result}`);
    p.done(o);
    if (this.initPending && this.link.isOpen) this.init('reconnected during the vend');
  }

  /** Session state changes: a cancelled/expired/rejected order denies the machine's request. */
  orderChanged(change: OrderChange): void {
    const p = this.phase;
    if (p.kind !== 'requested' || p.orderId !== change.orderId) return;
    if (DENY_ON.has(change.to)) this.deny(`order ${change.orderId} ${change.to}`);
  }

  // ---- faces --------------------------------------------------------------------------------------

  private makeButtons(): Buttons & { describe(): DeviceReport } {
    return this.buttonsFace(
      {
        onPress: (listener) => {
          this.pressListeners.add(listener);
          return () => this.pressListeners.delete(listener);
        },
        onCancel: (listener) => {
          this.cancelListeners.add(listener);
          return () => this.cancelListeners.delete(listener);
        },
        orderChanged: (c) => this.orderChanged(c),
      },
      () => {
        this.pressListeners.clear();
        this.cancelListeners.clear();
      },
    );
  }

  private makeDispenser(): Dispenser & { describe(): DeviceReport } {
    // the machine owns its motors
    return this.dispenserFace((slot: number) => {
      const p = this.phase;
      if (p.kind === 'approved') return Promise.reject(new DispenserBusy('the machine is already vending'));
      if (p.kind !== 'requested' || p.slot !== slot) {
        const why =
          p.kind === 'requested'
            ? `the machine asks for slot ${p.slot}, not ${slot}`
            : 'the machine has no open request (it cancelled or timed out before the payment)';
        this.log?.warn({ slot }, `mdb: not approving: ${why}`);
        return Promise.resolve({ result: 'vend_failed', pulses: 0, detail: `not approved: ${why}` });
      }
      if (!this.link.write(Commands.approve(p.price))) {
        this.phase = { kind: 'idle' };
        return Promise.resolve({ result: 'vend_failed', pulses: 0, detail: 'MDB interface disconnected: the machine was not told to vend' });
      }
      this.log?.info({ item: p.item, price: p.price, orderId: p.orderId }, `mdb: approved ${p.price} for item ${p.item}`);
      return new Promise<VendOutcome>((resolve) => {
        const timer = setTimeout(() => {
          // end the session so the machine does not sit on approved credit
          this.link.write(Commands.deny);
          this.settle({
            result: 'vend_failed',
            pulses: 1,
            detail: `no vend result from the machine within ${this.opts.resultTimeoutMs} ms after approval; it may have dispensed`,
          });
        }, this.opts.resultTimeoutMs);
        this.phase = { ...p, kind: 'approved', timer, done: resolve };
      });
    });
  }
}
