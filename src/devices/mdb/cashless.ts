import type { Logger } from '../../runtime/log.js';
import { isSelectionAnswer, type Buttons, type OrderChange, type SelectionAnswer, type SelectionDetail } from '../buttons.js';
import { isCurrency, toDecimalString, type Currency } from '../../core/money.js';
import { DispenserBusy, type Dispenser, type VendOrder, type VendOutcome } from '../dispenser.js';
import type { FaultSink } from '../faults.js';
import type { DeviceReport } from '../report.js';
import { LineDevice } from '../serial/line-device.js';
import type { OpenPort } from '../serial/line-port.js';
import { checkMachinePrice, type PriceProbe } from './price.js';

export { canProbePrice, type PriceProbe } from './price.js';
import { Commands, parseBoardLine, type BoardLine, type CashlessState } from './qibixx.js';
import { diagnosePriceRange, diagnoseScale, type ScaleSetup, type ScaleVerdict } from './scale.js';
import { currencyOfMdbCode, describeBusSetup, mdbCurrencyCode, readerMismatches, SetupExchange, sixteenBitMoney, type BusSetup, type ExpectedReader } from './bus-setup.js';

// An MDB vending machine retrofitted with a Qibixx board in cashless-slave mode. The machine
// keeps its keypad, its prices and its motors; qrkiosk is its "card reader":
//
//   machine keypad  -> c,STATUS,VEND,<price>,<item>  -> a selection (buttons face), priced by the
//                      session from the catalog and checked against the machine's price
//   relay: paid     -> session calls dispenser.vend -> C,VEND,<price> (approve)
//   machine result  -> c,VEND,SUCCESS = dispensed, c,ERR,VEND n = vend_failed (refund)
//   cancel/expiry   -> C,STOP (deny), so the machine stops waiting for credit
//
// That is the selection-first ("always idle") style. The card-first style ("authorization
// first") suits a QR payment made before the machine is touched:
//
//   kiosk: customer picks, pays  -> relay: paid -> dispenser.vend(slot, order)
//                                -> C,START,<paid amount> (a session with funds)
//   machine keypad               -> c,STATUS,VEND,<price>,<item>: the paid item -> C,VEND (approve)
//                                   any other item, or a price above what was paid -> C,STOP, refund
//   machine result               -> as above, then C,STOP ends the session: one payment, one vend
//                                   (a second request in the session, multi-vend, is denied)
//   nobody chooses in time, or the customer cancels on the machine -> vend_failed, refund
//
// The machine, not the Pi, turns the motor: only c,VEND,SUCCESS means the customer got the
// product. Approval is sent at most once per request; nothing is re-sent after a reconnect. A
// machine that stops waiting (its own timeout) before our approval reaches it leaves the vend
// state without a result: that is reported as not dispensed at once, so the paid customer is
// refunded, and an approval that arrives after it gave up cannot start a vend nobody is paying
// for (the request it answered is gone). Revalue (putting money back on a card) is always
// refused: qrkiosk keeps no customer balances.

export interface MdbOptions {
  path: string;
  baudRate: number;
  /** machine item number -> slot; absent: item N is slot N */
  items?: ReadonlyMap<number, number>;
  /** decimal; absent = the machine's price must equal the catalog's */
  trustMachinePriceWithin?: string;
  /** after approving, how long the machine has to report the vend result */
  resultTimeoutMs: number;
  /** selection-first (the machine asks, default) or card-first (we open a session once paid) */
  style?: 'selection-first' | 'card-first';
  /** card-first: how long the customer has to choose on the machine after the session opens */
  selectTimeoutMs?: number;
  /**
   * C,SETCONF lines sent on every enable (the board forgets them at power-off); empty = the
   * board's stored setup. Built from hardware.mdb.address / setup / setconf (mdbSetconf()).
   */
  setconf?: ReadonlyArray<readonly [string, string]>;
  /** what the reader announces (for the scale check's advice); null = unknown */
  scale?: ScaleSetup | null;
  /**
   * Read the setup exchange off the bus (the board's sniffer, X,1) on every enable, and check
   * what the reader announced against `expectReader`. Off = trust the config.
   */
  readSetup?: boolean;
  /** what the reader must announce at setup (what C,SETCONF asked for) */
  expectReader?: ExpectedReader;
  /** after the board says ENABLED, how long late sniffer lines of the setup may still come */
  setupGraceMs?: number;
  /** the sniffer is never left on longer than this (a VMC that never sets the reader up) */
  setupReadMs?: number;
  /** how long the board has to answer one C,SETCONF */
  setconfAnswerMs?: number;
  reconnect?: { baseMs: number; capMs: number };
  openPort?: OpenPort;
  logger?: Logger;
  /** unplugged / board error conditions, for `qrkiosk hardware` */
  faults?: FaultSink;
}

export const MDB_DEFAULTS = { baudRate: 115200, resultTimeoutMs: 60_000 } as const;

/** MDB addresses of the two cashless devices a VMC can have */
export const CASHLESS_ADDRESS = { 1: '0x10', 2: '0x60' } as const;

/**
 * The C,SETCONF lines for a config: address, always-idle for the style, currency, scale factor
 * and decimal places (so the reader announces what the config says), then the operator's own.
 */
export function mdbSetconf(c: {
  address?: 1 | 2 | undefined;
  style?: 'selection-first' | 'card-first' | undefined;
  currencyCode?: string | undefined;
  scaleFactor?: number | undefined;
  decimalPlaces?: number | undefined;
  setconf?: Record<string, string> | undefined;
}): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (c.address !== undefined) out.push(['mdb-addr', CASHLESS_ADDRESS[c.address]]);
  if (c.style !== undefined) out.push(['mdb-always-idle', c.style === 'selection-first' ? '1' : '0']);
  if (c.currencyCode !== undefined) out.push(['mdb-currency-code', c.currencyCode]);
  if (c.scaleFactor !== undefined) out.push(['mdb-scale-factor', String(c.scaleFactor)]);
  if (c.decimalPlaces !== undefined) out.push(['mdb-decimal-places', String(c.decimalPlaces)]);
  for (const [k, v] of Object.entries(c.setconf ?? {})) {
    const i = out.findIndex(([p]) => p === k);
    if (i >= 0) out[i] = [k, v];
    else out.push([k, v]);
  }
  return out;
}

type Phase =
  | { kind: 'idle' }
  | { kind: 'requested'; item: number; price: string; slot: number; orderId: string | null; at: number }
  | {
      kind: 'starting';
      slot: number;
      funds: string;
      order: VendOrder;
      /** the board said c,STATUS,IDLE: the VMC opened the session */
      open: boolean;
      timer: NodeJS.Timeout;
      done: (o: VendOutcome) => void;
    }
  | {
      kind: 'approved';
      item: number;
      price: string;
      slot: number;
      orderId: string | null;
      timer: NodeJS.Timeout;
      done: (o: VendOutcome) => void;
    };

interface Probe {
  slot: number;
  catalog: { price: number; currency: string };
  resolve: (r: PriceProbeResult) => void;
  timer: NodeJS.Timeout;
}

export type PriceProbeResult =
  | { ok: true; slot: number; item: number; machinePrice: string; verdict: ScaleVerdict; setup: ProbeSetup }
  | { ok: false; slot: number; reason: 'timeout' | 'busy' | 'not_ready' | 'setup_mismatch'; message: string };

/** What the price check compared against: the setup read on the bus, or only the config. */
export interface ProbeSetup {
  source: 'bus' | 'config' | 'none';
  scaleFactor: number | null;
  decimalPlaces: number | null;
  /** the VMC's max/min prices from setup, in scaled units (null = not said / not read) */
  vmcMax: number | null;
  vmcMin: number | null;
  /** the catalog price against the VMC's max/min and the bus' number range */
  problems: string[];
}

export interface MdbHealth {
  driver: 'mdb';
  path: string;
  port: string;
  /** the cashless state the board last reported */
  board: CashlessState | null;
  phase: 'idle' | 'requested' | 'starting' | 'approved';
  style: 'selection-first' | 'card-first';
  request: { item: number | null; price: string; slot: number; orderId: string | null } | null;
  /** each C,SETCONF of the last enable: ok, refused (board's text) or no answer */
  setup: Array<{ param: string; value: string; result: string }>;
  /** the last setup exchange read off the bus (readSetup), null = none read yet */
  busSetup: BusSetup | null;
  /** where the reader's announcement differs from the config; empty = agrees (or not read) */
  setupMismatch: string[];
  /** the catalog against the VMC's max/min prices (checkCatalog), one sentence per problem */
  priceRange: string[];
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
  readonly dispenser: Dispenser & { describe(): DeviceReport } & PriceProbe;
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
  private readonly style: 'selection-first' | 'card-first';
  private probe: Probe | undefined;
  private setupResults: MdbHealth['setup'] = [];
  /** the answer a C,SETCONF is waiting for */
  private setconfWaiter: ((answer: string) => void) | undefined;
  /** bumped on every enable: a stale setup chain stops */
  private initRun = 0;
  /** the setup exchange being read (sniffer on), undefined = not reading */
  private exchange: SetupExchange | undefined;
  /** ends the read: the cap from the start, then the short grace once the board is enabled */
  private setupGrace: NodeJS.Timeout | undefined;
  private setupGraceStarted = false;
  /** between C,0 and C,1 of an enable: a status then is the board's answer to C,0, not the VMC */
  private enabling = false;
  private busSetup: BusSetup | null = null;
  private setupMismatch: string[] = [];
  private priceRange: string[] = [];
  /** a re-enable was sent because the reader announced other values: once, until a read agrees */
  private reinitForMismatch = false;
  /** the slots' catalog prices, for the max/min check after each setup read */
  private catalog: Array<{ slot: number; price: number; currency: string }> = [];

  constructor(opts: MdbOptions) {
    super(opts, { link: 'mdb', logPart: 'mdb', device: `MDB interface ${opts.path}`, unplugHint: 'check the MDB-USB cable or the HAT' });
    this.opts = opts;
    this.style = opts.style ?? 'selection-first';
    this.buttons = this.makeButtons();
    this.dispenser = this.makeDispenser();
  }

  /** `qrkiosk hardware` */
  override describe(role: 'buttons' | 'dispenser'): DeviceReport {
    const h = this.health();
    const enabled = h.board === 'ENABLED' || h.board === 'IDLE' || h.board === 'VEND';
    const refused = h.setup.filter((s) => s.result !== 'ok');
    const healthy = refused.length === 0 && h.setupMismatch.length === 0 && h.priceRange.length === 0;
    const status: DeviceReport['status'] = h.port !== 'open' ? 'disconnected' : enabled && healthy ? 'ok' : 'fault';
    const board = h.board ? `cashless ${h.board.toLowerCase()}` : 'no status from the board yet';
    const req = h.request ? `; machine asks ${h.request.price} for item ${h.request.item} (slot ${h.request.slot}, ${h.phase})` : '';
    const last = role === 'dispenser' && h.lastVend ? `; last vend item ${h.lastVend.item}: ${h.lastVend.result}` : '';
    const what = role === 'buttons' ? 'the machine keypad selects' : 'the machine vends after approval';
    const setup =
      (refused.length ? `; setup refused: ${refused.map((r) => `${r.param}=${r.value} (${r.result})`).join(', ')}` : '') +
      (h.busSetup ? `; setup read on the bus: ${describeBusSetup(h.busSetup, this.catalogCurrency())}` : '') +
      (h.setupMismatch.length ? `; the reader announced ${h.setupMismatch.join(', ')}` : '') +
      (h.priceRange.length ? `; ${h.priceRange.join('; ')}` : '') +
      (this.probe ? `; price check of slot ${this.probe.slot}: waiting for its item to be chosen on the machine` : '');
    return {
      role,
      driver: 'mdb',
      status,
      detail: `${h.path} @ ${this.opts.baudRate} baud, port ${h.port}; ${h.style}; ${board}; ${what}${req}${last}${setup}${h.lastError ? `; last board error: ${h.lastError}` : ''}`,
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
      style: this.style,
      request:
        p.kind === 'idle'
          ? null
          : p.kind === 'starting'
            ? { item: null, price: p.funds, slot: p.slot, orderId: p.order.orderId }
            : { item: p.item, price: p.price, slot: p.slot, orderId: p.orderId },
      setup: this.setupResults,
      busSetup: this.busSetup,
      setupMismatch: this.setupMismatch,
      priceRange: this.priceRange,
      lastVend: this.lastVend,
      ...this.linkCounts(),
      lastError: this.lastError,
    };
  }

  override async close(): Promise<void> {
    const p = this.phase;
    if (p.kind === 'approved') this.settle({ result: 'vend_failed', pulses: 1, detail: 'agent stopping before the machine reported the vend result' });
    else if (p.kind === 'requested') this.deny('agent stopping');
    else if (p.kind === 'starting') this.endStart('agent stopping before the customer chose', true);
    this.endProbe({ ok: false, slot: this.probe?.slot ?? 0, reason: 'not_ready', message: 'agent stopping' });
    clearTimeout(this.setupGrace);
    this.exchange = undefined;
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
      case 'sniff':
        if (this.exchange?.take(m.block)) this.finishSetupRead('complete');
        return;
      case 'status': {
        const was = this.board;
        this.board = m.state;
        this.onStatusForSetupRead(m.state);
        if (was !== m.state) this.log?.info({ from: was, to: m.state, funds: m.funds }, `mdb: cashless ${m.state.toLowerCase()}`);
        const p = this.phase;
        if (m.state === 'IDLE' && p.kind === 'starting') {
          p.open = true;
          this.log?.info({ slot: p.slot, funds: m.funds ?? p.funds }, 'mdb: the machine opened the session: waiting for the customer to choose');
          return;
        }
        // selection-first: IDLE before our approval/result = the machine left the vend
        return this.sessionLeft(`c,STATUS,${m.state}`);
      }
      case 'vend_request':
        this.board = 'VEND';
        return this.onRequest(m.price, m.item);
      case 'revalue_request': {
        // money back onto a "card": qrkiosk holds no balances, so never
        this.log?.warn({ line: m.text }, 'mdb: the machine asked to revalue: refused (qrkiosk keeps no customer balance)');
        if (this.phase.kind !== 'approved') this.link.write(Commands.deny);
        this.emit('revalue_refused', m.text);
        return;
      }
      case 'set_ok':
        this.setconfWaiter?.('ok');
        return;
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
        if (this.setconfWaiter) return this.setconfWaiter(`refused: ${m.text}`);
        if (/cashless is off/i.test(m.text) && this.phase.kind === 'idle') this.init('board says cashless is off', true);
        return;
      }
      case 'other':
        if (m.text === 'x,NACK' && this.exchange) {
          // a firmware without the sniffer: nothing to read, trust the config
          this.finishSetupRead('the board refused X,1 (no sniffer in this firmware?)');
          return;
        }
        this.log?.debug({ line: m.text }, 'mdb: board line not used');
        return;
    }
  }

  /**
   * The board left the vend / the session (a status other than VEND). Whatever we were waiting
   * for from the machine will not come.
   */
  private sessionLeft(why: string): void {
    const p = this.phase;
    switch (p.kind) {
      case 'requested':
        // the machine left the vend state before we approved: its customer cancelled, or it
        // stopped waiting for credit. The order must not be paid for any more.
        return this.withdrawn(`machine left the vend request (${why})`);
      case 'approved':
        // A result always comes before the board leaves the vend. None came: the machine gave
        // up (its own timeout) before our approval reached it, or cancelled. Nothing was vended.
        this.settle({
          result: 'vend_failed',
          pulses: 0,
          detail: `machine left the vend (${why}) without reporting a result: it gave up before the approval arrived; not dispensed`,
        });
        return;
      case 'starting':
        // ENABLED (or lower) while we wait for a choice: the session is over (the customer
        // pressed cancel on the machine, or the machine's own session timeout)
        if (why !== 'c,STATUS,IDLE') this.endStart(`the machine ended the session before a selection (${why})`, false);
        return;
      case 'idle':
        return;
    }
  }

  private onRequest(price: string, item: number): void {
    const p = this.phase;
    if (this.probe && p.kind === 'idle') return this.onProbeRequest(price, item);
    if (p.kind === 'approved') {
      this.log?.error({ item, price, approvedItem: p.item }, 'mdb: a new vend request while an approved vend has no result yet: ignored');
      return;
    }
    if (p.kind === 'starting') return this.onSessionRequest(p, price, item);
    if (this.style === 'card-first') {
      // no session of ours is open: a second selection after the paid one (multi-vend), or a
      // machine set to always-idle. One payment buys one vend.
      this.log?.warn({ item, price }, 'mdb: vend request outside a paid session (multi-vend?): denied');
      this.link.write(Commands.deny);
      this.emit('denied', item, 'no paid session (multi-vend refused)');
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

  /** Card-first: the customer chose on the machine inside the session we opened for a paid order. */
  private onSessionRequest(p: Extract<Phase, { kind: 'starting' }>, price: string, item: number): void {
    const slot = this.slotOf(item);
    const refuse = (why: string) => {
      this.log?.warn({ item, price, paidSlot: p.slot }, `mdb: ${why}: denied`);
      this.link.write(Commands.deny);
      clearTimeout(p.timer);
      this.phase = { kind: 'idle' };
      p.done({ result: 'vend_failed', pulses: 0, detail: `not approved: ${why}` });
    };
    if (slot !== p.slot) return refuse(`the customer chose item ${item}${slot !== undefined ? ` (slot ${slot})` : ''} but paid for slot ${p.slot}`);
    const check = checkMachinePrice(price, this.opts.trustMachinePriceWithin, { price: p.order.amount, currency: p.order.currency });
    if (!check.ok) return refuse(`machine price disagrees with the paid amount: ${check.detail}`);
    if (check.difference > 0) return refuse(`the machine asks ${price}, more than the ${p.funds} paid`);
    clearTimeout(p.timer);
    if (!this.link.write(Commands.approve(price))) {
      this.phase = { kind: 'idle' };
      p.done({ result: 'vend_failed', pulses: 0, detail: 'MDB interface disconnected: the machine was not told to vend' });
      return;
    }
    this.log?.info({ item, price, orderId: p.order.orderId }, `mdb: approved ${price} for item ${item} in the paid session`);
    this.phase = { kind: 'approved', item, price, slot, orderId: p.order.orderId, timer: this.resultTimer(), done: p.done };
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
    if (this.phase.kind === 'starting') this.endStart('MDB interface reconnected before the customer chose', true);
    this.init('port opened');
  }

  private init(why: string, rateLimited = false): void {
    const now = Date.now();
    // a board repeating "cashless is off" must not be answered with an enable storm
    if (rateLimited && now - this.lastInitAt < 2000) return;
    this.lastInitAt = now;
    this.initPending = false;
    this.enabling = true;
    const run = ++this.initRun;
    const setconf = this.opts.setconf ?? [];
    this.log?.info({ why, setconf: setconf.length }, 'mdb: enabling the cashless slave (C,0, setup, C,1)');
    this.link.write(Commands.disable);
    if (setconf.length === 0) {
      this.enableReading();
      return;
    }
    // one C,SETCONF at a time, each answered c,SET,OK (or an error) before the next
    void (async () => {
      const results: MdbHealth['setup'] = [];
      for (const [param, value] of setconf) {
        if (run !== this.initRun || !this.link.isOpen) return;
        const answer = await new Promise<string>((resolve) => {
          const t = setTimeout(() => resolve('no answer'), this.opts.setconfAnswerMs ?? 2000);
          this.setconfWaiter = (a) => {
            clearTimeout(t);
            this.setconfWaiter = undefined;
            resolve(a);
          };
          this.link.write(Commands.setconf(param, value));
        });
        this.setconfWaiter = undefined;
        results.push({ param, value, result: answer });
        if (answer !== 'ok') {
          const hint =
            param === 'mdb-addr' && value === '0x60'
              ? ': this interface (or its firmware) cannot be the second cashless device; update it, or take the card reader out and use hardware.mdb.address: 1'
              : '';
          this.log?.error({ param, value, answer }, `mdb: the board did not take ${param}=${value} (${answer})${hint}`);
          this.opts.faults?.condition(this.device, 'setup', `C,SETCONF,${param}=${value}: ${answer}${hint}`);
        }
      }
      if (run !== this.initRun) return;
      this.setupResults = results;
      if (results.every((r) => r.result === 'ok')) this.opts.faults?.clear(this.device, 'setup', 'reader setup accepted');
      this.enableReading();
      this.emit('setup', results);
    })();
  }

  // ---- the setup exchange, read off the bus ----------------------------------------------------

  /** C,1, with the sniffer on first when the setup is read (the VMC sets the reader up anew). */
  private enableReading(): void {
    this.enabling = false;
    if (this.opts.readSetup) this.startSetupRead();
    this.link.write(Commands.enable);
  }

  private startSetupRead(): void {
    clearTimeout(this.setupGrace);
    const capMs = this.opts.setupReadMs ?? 30_000;
    this.setupGrace = setTimeout(() => this.finishSetupRead(`no complete setup within ${Math.round(capMs / 1000)} s`), capMs);
    this.setupGraceStarted = false;
    const addr = this.opts.setconf?.find(([p]) => p === 'mdb-addr')?.[1] === CASHLESS_ADDRESS[2] ? 0x60 : 0x10;
    this.exchange = new SetupExchange(addr);
    this.link.write(Commands.sniff(true));
  }

  private onStatusForSetupRead(state: CashlessState): void {
    if (!this.opts.readSetup) return;
    // the VMC reset the reader by itself (its power cycle): it sets it up again, read that too
    if (state === 'INACTIVE' && !this.exchange && !this.enabling && this.link.isOpen) {
      this.log?.info('mdb: the machine reset the reader: reading its new setup');
      this.startSetupRead();
      return;
    }
    // MDB sets up before it enables; the sniffer's lines may lag the status line a little
    if (state === 'ENABLED' && this.exchange && !this.setupGraceStarted) {
      this.setupGraceStarted = true;
      clearTimeout(this.setupGrace);
      this.setupGrace = setTimeout(() => this.finishSetupRead('the board is enabled'), this.opts.setupGraceMs ?? 1000);
    }
  }

  /** Sniffer off; check what the reader announced against the config, and the catalog against the VMC's prices. */
  private finishSetupRead(why: string): void {
    const ex = this.exchange;
    if (!ex) return;
    this.exchange = undefined;
    clearTimeout(this.setupGrace);
    this.setupGrace = undefined;
    this.link.write(Commands.sniff(false));
    const s = ex.setup;
    this.busSetup = s;
    if (!s.reader) {
      this.setupMismatch = [];
      this.log?.warn({ why, busSetup: s }, `mdb: the reader's setup was not seen on the bus (${why}): trusting hardware.mdb.setup; check with qrkiosk test mdb-price`);
    } else {
      this.setupMismatch = readerMismatches(s.reader, this.opts.expectReader ?? {});
      if (this.setupMismatch.length) {
        // the board lost its setup (a power blip while the port stayed open) or does not apply a
        // parameter: send the setup again, once; a board that still disagrees stays a fault
        const retry = !this.reinitForMismatch && this.phase.kind === 'idle' && !this.probe && (this.opts.setconf?.length ?? 0) > 0;
        const msg = `the reader announced ${this.setupMismatch.join(', ')} to the machine at setup: the board did not keep or apply its C,SETCONF setup; ${
          retry ? 'sending the setup again' : 'check the board\'s firmware (its parameter names) and hardware.mdb.setup, then restart the agent'
        }`;
        this.log?.error({ busSetup: s }, `mdb: ${msg}`);
        this.opts.faults?.condition(this.device, 'setup_read', msg);
        if (retry) {
          this.reinitForMismatch = true;
          this.emit('setup_read', s);
          this.init('the reader announced other values than configured');
          return;
        }
      } else {
        this.reinitForMismatch = false;
        this.log?.info({ busSetup: s }, `mdb: setup read on the bus: ${describeBusSetup(s, this.catalogCurrency())}`);
        this.opts.faults?.clear(this.device, 'setup_read', 'the reader announces what the config asks');
      }
    }
    this.checkPriceRange();
    this.emit('setup_read', s);
  }

  /**
   * The slots' catalog prices (the agent calls this when the catalog arrives): each is checked
   * against the VMC's max/min prices of the last setup read, and against what the bus can carry.
   */
  checkCatalog(catalog: Array<{ slot: number; price: number; currency: string }>): string[] {
    this.catalog = catalog;
    return this.checkPriceRange();
  }

  private catalogCurrency(): Currency | undefined {
    const c = this.catalog[0]?.currency;
    return c && isCurrency(c) ? c : undefined;
  }

  private checkPriceRange(): string[] {
    const s = this.busSetup;
    const reader = s?.reader ?? (this.opts.scale ? { scaleFactor: this.opts.scale.scaleFactor, decimalPlaces: this.opts.scale.decimalPlaces } : null);
    const problems: string[] = [];
    if (reader) {
      for (const p of this.catalog) for (const why of diagnosePriceRange(p, reader, s?.prices ?? null, sixteenBitMoney(s))) problems.push(`slot ${p.slot}: ${why}`);
    }
    const announced = s?.reader ? currencyOfMdbCode(s.reader.currencyCode) : undefined;
    const catalogCur = this.catalogCurrency();
    if (s?.reader && catalogCur && announced !== catalogCur) {
      // many VMCs ignore the reader's currency, so this is advice, not a fault
      this.log?.warn(
        { announced: s.reader.currencyCode, catalog: catalogCur },
        `mdb: the reader announces currency ${s.reader.currencyCode}${announced ? ` (${announced})` : ''} but the catalog is in ${catalogCur}: set hardware.mdb.setup.currencyCode: ${mdbCurrencyCode(catalogCur)}`,
      );
    }
    this.priceRange = problems;
    if (problems.length) {
      this.log?.error({ problems }, `mdb: the catalog does not fit the machine's setup: ${problems.join('; ')}`);
      this.opts.faults?.condition(this.device, 'price_range', problems.join('; '));
    } else this.opts.faults?.clear(this.device, 'price_range', 'the catalog fits the machine\'s setup');
    return problems;
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

  /** Card-first: the session we opened ends without a vend (the paid order is refunded). */
  private endStart(why: string, sendStop: boolean): void {
    const p = this.phase;
    if (p.kind !== 'starting') return;
    clearTimeout(p.timer);
    this.phase = { kind: 'idle' };
    if (sendStop) this.link.write(Commands.deny);
    this.log?.info({ slot: p.slot, orderId: p.order.orderId }, `mdb: paid session ended without a vend: ${why}`);
    p.done({ result: 'vend_failed', pulses: 0, detail: `not vended: ${why}` });
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
    // card-first: end the session now, so the funds cannot buy a second product (multi-vend)
    if (this.style === 'card-first') this.link.write(Commands.deny);
    p.done(o);
    if (this.initPending && this.link.isOpen) this.init('reconnected during the vend');
  }

  private resultTimer(): NodeJS.Timeout {
    return setTimeout(() => {
      // end the session so the machine does not sit on approved credit
      if (this.style !== 'card-first') this.link.write(Commands.deny);
      this.settle({
        result: 'vend_failed',
        pulses: 1,
        detail: `no vend result from the machine within ${this.opts.resultTimeoutMs} ms after approval; it may have dispensed`,
      });
    }, this.opts.resultTimeoutMs);
  }

  /** Session state changes: a cancelled/expired/rejected order denies the machine's request. */
  orderChanged(change: OrderChange): void {
    const p = this.phase;
    if (p.kind !== 'requested' || p.orderId !== change.orderId) return;
    if (DENY_ON.has(change.to)) this.deny(`order ${change.orderId} ${change.to}`);
  }

  // ---- price scale check (qrkiosk test mdb-price <slot>) -------------------------------------------

  /**
   * Waits for the technician to choose the slot's item on the machine, compares the price the
   * machine asks with the catalog's, and denies the request: nothing is sold. Card-first machines
   * only ask inside a session, so one is opened with funds well above the price (never approved).
   */
  probePrice(slot: number, catalog: { price: number; currency: string }, timeoutMs: number): Promise<PriceProbeResult> {
    if (this.probe || this.phase.kind !== 'idle') {
      return Promise.resolve({ ok: false, slot, reason: 'busy', message: `the MDB driver is busy (${this.probe ? 'another price check' : this.phase.kind})` });
    }
    if (!this.link.isOpen) return Promise.resolve({ ok: false, slot, reason: 'not_ready', message: `the MDB interface is ${this.link.state}` });
    if (this.setupMismatch.length) {
      return Promise.resolve({
        ok: false,
        slot,
        reason: 'setup_mismatch',
        message: `not checking prices against a setup the config does not describe: at setup the reader announced ${this.setupMismatch.join(', ')}; restart the agent (it sends the setup again on enable) or correct hardware.mdb.setup, then check again`,
      });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.style === 'card-first') this.link.write(Commands.deny);
        this.endProbe({ ok: false, slot, reason: 'timeout', message: `nobody chose the item of slot ${slot} on the machine within ${Math.round(timeoutMs / 1000)} s` });
      }, timeoutMs);
      this.probe = { slot, catalog, resolve, timer };
      if (this.style === 'card-first' && isCurrency(catalog.currency)) this.link.write(Commands.start(toDecimalString(catalog.price * 100, catalog.currency)));
    });
  }

  private onProbeRequest(price: string, item: number): void {
    const probe = this.probe!;
    // never sold: the request is always denied
    this.link.write(Commands.deny);
    const slot = this.slotOf(item);
    if (slot !== probe.slot) {
      this.log?.info({ item, slot, want: probe.slot }, 'mdb: price check: another item was chosen; still waiting');
      if (this.style === 'card-first' && isCurrency(probe.catalog.currency)) this.link.write(Commands.start(toDecimalString(probe.catalog.price * 100, probe.catalog.currency)));
      return;
    }
    const setup = this.probeSetup(probe.catalog);
    const scale: ScaleSetup | null =
      setup.source === 'none' ? null : { scaleFactor: setup.scaleFactor!, decimalPlaces: setup.decimalPlaces!, source: setup.source };
    const verdict = diagnoseScale(price, probe.catalog, scale);
    this.log?.info({ item, price, verdict, setup }, `mdb: price check of slot ${probe.slot}: ${verdict.message}`);
    this.endProbe({ ok: true, slot: probe.slot, item, machinePrice: price, verdict, setup });
  }

  /** The setup the price check uses: read on the bus when it was, else the config's. */
  private probeSetup(catalog: { price: number; currency: string }): ProbeSetup {
    const s = this.busSetup;
    const reader = s?.reader;
    const conf = this.opts.scale ?? null;
    const base = reader
      ? { source: 'bus' as const, scaleFactor: reader.scaleFactor, decimalPlaces: reader.decimalPlaces }
      : conf
        ? { source: 'config' as const, scaleFactor: conf.scaleFactor, decimalPlaces: conf.decimalPlaces }
        : { source: 'none' as const, scaleFactor: null, decimalPlaces: null };
    const problems =
      base.source === 'none' ? [] : diagnosePriceRange(catalog, { scaleFactor: base.scaleFactor!, decimalPlaces: base.decimalPlaces! }, s?.prices ?? null, sixteenBitMoney(s));
    return { ...base, vmcMax: s?.prices?.max ?? null, vmcMin: s?.prices?.min ?? null, problems };
  }

  private endProbe(r: PriceProbeResult): void {
    const probe = this.probe;
    if (!probe) return;
    clearTimeout(probe.timer);
    this.probe = undefined;
    probe.resolve(r);
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

  private makeDispenser(): Dispenser & { describe(): DeviceReport } & PriceProbe {
    // the machine owns its motors
    const face = this.dispenserFace((slot: number, order?: VendOrder) => {
      if (this.style === 'card-first') return this.vendCardFirst(slot, order);
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
        this.phase = { ...p, kind: 'approved', timer: this.resultTimer(), done: resolve };
      });
    });
    return Object.assign(face, {
      probePrice: (slot: number, catalog: { price: number; currency: string }, timeoutMs: number) => this.probePrice(slot, catalog, timeoutMs),
      checkCatalog: (catalog: Array<{ slot: number; price: number; currency: string }>) => this.checkCatalog(catalog),
    });
  }

  /** Card-first: open a session with the paid amount; the customer chooses on the machine. */
  private vendCardFirst(slot: number, order: VendOrder | undefined): Promise<VendOutcome> {
    const p = this.phase;
    if (p.kind !== 'idle' || this.probe) return Promise.reject(new DispenserBusy(`the machine is busy (${this.probe ? 'price check' : p.kind})`));
    const fail = (detail: string) => {
      this.log?.warn({ slot }, `mdb: not starting a session: ${detail}`);
      return Promise.resolve<VendOutcome>({ result: 'vend_failed', pulses: 0, detail: `not vended: ${detail}` });
    };
    if (!order || !isCurrency(order.currency)) return fail('card-first needs the paid amount (a customer order), not a bare slot');
    if (this.board !== 'ENABLED') return fail(`the machine is not ready for a session (cashless ${this.board?.toLowerCase() ?? 'not set up'})`);
    const funds = toDecimalString(order.amount, order.currency);
    if (!this.link.write(Commands.start(funds))) return fail('MDB interface disconnected');
    this.log?.info({ slot, funds, orderId: order.orderId }, `mdb: session opened with ${funds}: the customer chooses on the machine`);
    return new Promise<VendOutcome>((resolve) => {
      const ms = this.opts.selectTimeoutMs ?? 60_000;
      const timer = setTimeout(() => this.endStart(`nobody chose on the machine within ${Math.round(ms / 1000)} s`, true), ms);
      this.phase = { kind: 'starting', slot, funds, order, open: false, timer, done: resolve };
    });
  }
}
