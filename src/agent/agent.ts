import { randomBytes, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../runtime/log.js';
import { createLogger } from '../runtime/log.js';
import { packageRoot } from '../runtime/package-root.js';
import { KeyboardButtons, NoButtons, SimButtons, type Buttons } from '../devices/buttons.js';
import type { Display, Screen } from '../devices/display/model.js';
import { openDisplay } from '../devices/display/open.js';
import { DispenserBusy, SimDispenser, type Dispenser } from '../devices/dispenser.js';
import { observesInputs } from '../devices/report.js';
import type { PrintResult, ReceiptPrinter } from '../devices/printer/printer.js';
import { receiptTime } from '../devices/printer/receipt.js';
import { parseAgentConfig, resolveToken, type AgentConfig, type AgentConfigInput } from './config.js';
import { ControlServer, ControlStream, answers, type ControlRequest } from './control.js';
import { openHardware, type Hardware, type HardwareDeps, type HardwareReport } from './hardware.js';
import { DexAuditor } from './dex-auditor.js';
import { canProbePrice } from '../devices/mdb/price.js';
import type { PriceProbeResult } from '../devices/mdb/cashless.js';
import type { DexReadOptions, DexReadResult } from '../devices/dex/reader.js';
import { crashPoint } from '../runtime/crash-hook.js';
import { Journal, type JournalEntry } from './journal.js';
import { RelayLink, type LinkState } from './relay-link.js';
import { RemoteCommands } from './remote-commands.js';
import { StatusReporter, type StatusBody } from './status-report.js';
import { frame } from '../protocol/codec.js';
import { STATUS_MAX_SLOTS, type Welcome } from '../protocol/messages.js';
import { keyIdOf, parsePublicKeyText } from '../protocol/signed-command.js';
import {
  VendSession,
  type CancelReason,
  type CancelResult,
  type SelectResult,
  type SessionStatus,
  type SessionTimings,
  type StateChange,
} from './session.js';

// Composition root: config -> journal, devices, relay link, vend session, control socket.
// Nothing else in the agent builds its own collaborators, so tests swap any of them.

export interface AgentDeps {
  logger?: Logger;
  buttons?: Buttons;
  display?: Display;
  dispenser?: Dispenser;
  /** screen durations (tests shorten them) */
  timings?: Partial<SessionTimings>;
  /** start the unix control socket (default true) */
  control?: boolean;
  /** backoff reset period of the relay link (default 30 s) */
  stableAfterMs?: number;
  /** stand-ins for GPIO, node-hid and evdev (src/agent/hardware.ts) */
  hardware?: HardwareDeps;
  /** tests: the DEX audit read (a pty reader, a fake) */
  dexRead?: (opts: DexReadOptions) => Promise<DexReadResult>;
}

export interface AgentStatus extends SessionStatus {
  kioskId: string;
  agentVersion: string;
  relay: {
    url: string;
    state: LinkState;
    online: boolean;
    lastWelcomeAt: number | null;
    connectedSince: number | null;
    /** the id of relay.commandKey (the key relay commands must be signed with); null: commands are refused */
    commandKeyId: string | null;
  };
  startedAt: number;
  uptimeSeconds: number;
  controlSocket: string | null;
}

export interface Agent {
  readonly config: AgentConfig;
  select(slot: number): SelectResult;
  cancel(reason?: CancelReason): CancelResult;
  status(): AgentStatus;
  journal(limit?: number): JournalEntry[];
  on(event: 'state', listener: (change: StateChange) => void): this;
  on(event: 'screen', listener: (screen: Screen) => void): this;
  on(event: 'link', listener: (state: LinkState) => void): this;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: 'state' | 'screen' | 'link', listener: (...args: any[]) => void): this;
  once(event: 'state', listener: (change: StateChange) => void): this;
  once(event: 'screen', listener: (screen: Screen) => void): this;
  once(event: 'link', listener: (state: LinkState) => void): this;
  /** graceful stop: finishes a vend in progress, motors safe, link and DB closed */
  close(): Promise<void>;
}

/** Who asked (the technician commands send their login); recorded with what they changed. */
function technician(by: unknown): string {
  return typeof by === 'string' && by.trim() ? by.trim().slice(0, 100) : 'unknown';
}

export function agentVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function buildButtons(cfg: AgentConfig, logger: Logger, hw: Hardware): Buttons {
  switch (cfg.hardware.buttons.driver) {
    case 'keyboard':
      return new KeyboardButtons(process.stdin, logger);
    case 'sim':
      return new SimButtons();
    case 'none':
      return new NoButtons();
    case 'gpio':
    case 'hid':
    case 'evdev':
    case 'serial-panel':
    case 'mdb':
      // opened by openHardware (src/agent/hardware.ts)
      return hw.buttons!;
  }
}

function buildDisplay(cfg: AgentConfig, logger: Logger): Promise<Display> {
  // terminal, framebuffer, web, log or none (docs/display.md); only that renderer is loaded
  return openDisplay(cfg.hardware.display, { locale: cfg.locale ?? 'es', logger: logger.child({ part: 'display' }) });
}

function buildDispenser(cfg: AgentConfig, logger: Logger, hw: Hardware): Dispenser {
  const d = cfg.hardware.dispenser;
  // gpio: opened by openHardware (src/agent/hardware.ts)
  if (d.driver !== 'sim') return hw.dispenser!;
  return new SimDispenser({
    pulseMs: d.pulseMs,
    dropWindowMs: d.dropWindowMs,
    maxPulses: d.maxPulses,
    fault: d.sim.fault,
    dropDelayMs: d.sim.dropDelayMs,
    slowDropMs: d.sim.slowDropMs,
    ...(d.sim.pulseLog ? { pulseLog: d.sim.pulseLog } : {}),
    onPulse: () => crashPoint('pulse'),
    logger: logger.child({ part: 'dispenser' }),
  });
}

class AgentImpl extends EventEmitter implements Agent {
  private readonly startedAt = Date.now();
  private closing: Promise<void> | undefined;
  control: ControlServer | undefined;
  private readonly unsubscribe: Array<() => void> = [];
  /** the physical side of buttons and dispenser: GPIO backend, fault log (src/agent/hardware.ts) */
  hardware: Hardware | undefined;
  /** the receipt printer (hardware.printer), if the kiosk has one */
  printer: ReceiptPrinter | undefined;
  /** `qrkiosk test buttons` viewers: while one watches, presses are shown there and sell nothing */
  private buttonTests = 0;
  private readonly streamEnders = new Set<(reason: string) => void>();
  /** a technician's test dispense is running: the motor is not free for a customer */
  private testDispensing = false;
  /** the machine's audit over its DEX port (hardware.dex), if configured */
  dex: DexAuditor | undefined;
  /** the relay's signed commands (src/agent/remote-commands.ts) */
  commands: RemoteCommands | undefined;
  /** the status snapshot for the operator's console (src/agent/status-report.ts) */
  reporter: StatusReporter | undefined;
  /** relay.commandKey, parsed */
  commandKey: KeyObject | undefined;

  constructor(
    readonly config: AgentConfig,
    private readonly db: Journal,
    private readonly link: RelayLink,
    private readonly session: VendSession,
    private readonly buttons: Buttons,
    private readonly display: Display,
    private readonly dispenser: Dispenser,
    private readonly logger: Logger,
  ) {
    super();
  }

  wire(): void {
    this.session.on('state', (c: StateChange) => {
      this.emit('state', c);
      // an MDB machine waiting for credit is denied when its order is cancelled or expires
      this.buttons.orderChanged?.(c);
      if (c.to === 'dispensed') this.printReceipt(c.orderId);
      // a stalled motor is a hardware fault the operator must see, not only a refused slot
      if (c.event === 'jammed') {
        const slot = this.db.getOrder(c.orderId)?.slot;
        if (slot !== undefined) this.hardware?.faults.condition(`slot ${slot} motor`, 'jammed', `the motor stalled during order ${c.orderId}: no sales from slot ${slot} until it is cleared and the agent restarted`);
      }
      this.reporter?.poke();
    });
    this.session.on('screen', (s: Screen) => {
      this.emit('screen', s);
      this.reporter?.poke();
    });
    this.link.on('state', (s: LinkState) => {
      this.emit('link', s);
      if (s !== 'online') this.session.onOffline();
    });
    this.link.on('welcome', (w: Welcome) => {
      this.session.onWelcome(w);
      this.checkRelayKey(w);
      this.reporter?.onWelcome();
      this.checkMdbCatalog();
    });
    // the catalog of the last run, until the relay sends a new one
    this.checkMdbCatalog();
    if (this.hardware) {
      const faults = this.hardware.faults;
      const poke = () => this.reporter?.poke();
      faults.on('fault', poke);
      faults.on('cleared', poke);
      this.unsubscribe.push(() => {
        faults.off('fault', poke);
        faults.off('cleared', poke);
      });
    }
    this.unsubscribe.push(
      this.buttons.onPress((slot, detail) => {
        // a technician is watching the buttons (`qrkiosk test buttons`) or test-dispensing
        if (this.buttonTests > 0 || this.testDispensing) {
          this.logger.info({ slot, buttonTests: this.buttonTests, testDispensing: this.testDispensing }, `button ${slot}: technician test in progress, not selling`);
          // a refusal, so a source that must answer (an MDB machine) denies the request
          return { ok: false, reason: 'busy', message: 'a technician is testing the kiosk' } satisfies SelectResult;
        }
        // detail: the machine's own price (MDB), checked against the catalog by the session
        const r = this.session.select(slot, detail ?? {});
        if (!r.ok) this.logger.info({ slot, reason: r.reason }, `button ${slot}: ${r.message}`);
        // the source learns what became of it (MDB denies the machine's request on a refusal)
        return r;
      }),
      this.buttons.onCancel(() => this.session.cancel('customer')),
    );
  }

  select(slot: number): SelectResult {
    if (this.testDispensing) return { ok: false, reason: 'busy', message: 'a technician test dispense is running: try again when it is over' };
    return this.session.select(slot);
  }

  cancel(reason: CancelReason = 'customer'): CancelResult {
    return this.session.cancel(reason);
  }

  status(): AgentStatus {
    const now = Date.now();
    return {
      kioskId: this.config.kioskId,
      agentVersion: agentVersion(),
      ...this.session.status(),
      relay: {
        url: this.config.relay.url,
        state: this.link.state,
        online: this.link.online,
        lastWelcomeAt: this.link.lastWelcomeAt ?? this.db.loadWelcome()?.receivedAt ?? null,
        connectedSince: this.link.connectedSince ?? null,
        commandKeyId: this.commandKey ? keyIdOf(this.commandKey) : null,
      },
      startedAt: this.startedAt,
      uptimeSeconds: Math.floor((now - this.startedAt) / 1000),
      controlSocket: this.control?.path ?? null,
    };
  }

  journal(limit = 20): JournalEntry[] {
    return this.db.recent(limit);
  }

  /** The relay names its signing key in the welcome: a kiosk that trusts another one says so now, not at the first command. */
  private checkRelayKey(w: Welcome): void {
    if (!w.commandKeyId) return;
    const ours = this.commandKey ? keyIdOf(this.commandKey) : undefined;
    if (ours === w.commandKeyId) return;
    this.logger.warn(
      { relayKey: w.commandKeyId, trusted: ours ?? null },
      ours
        ? `the relay signs commands with key ${w.commandKeyId}, this kiosk trusts ${ours}: its commands will be refused until relay.commandKey is updated`
        : `the relay signs commands with key ${w.commandKeyId}, but agent.yaml has no relay.commandKey: its commands will be refused (qrkiosk relay command-key prints the line)`,
    );
  }

  /** What the operator's console shows of this kiosk (kiosk.status). */
  statusBody(): StatusBody {
    const s = this.session.status();
    const configured = this.db.configuredStock();
    const w = this.link.welcome ?? this.db.loadWelcome()?.welcome;
    const faults = this.hardware?.faults;
    const fault = (f: { at: number; device: string; kind: string; message: string; active: boolean; clearedAt?: number }) => ({
      at: f.at,
      device: f.device.slice(0, 120),
      kind: f.kind.slice(0, 40),
      message: f.message.slice(0, 300),
      active: f.active,
      ...(f.clearedAt !== undefined ? { clearedAt: f.clearedAt } : {}),
    });
    const catalog = this.session.catalog() ?? [];
    return {
      agentVersion: agentVersion(),
      startedAt: this.startedAt,
      paymentModel: w?.paymentModel ?? null,
      screen: s.screen,
      state: s.state,
      service: s.service ? { by: s.service.by.slice(0, 200), at: s.service.at, via: s.service.via ?? 'technician' } : null,
      updating: s.updating,
      openOrder: s.order ? { orderId: s.order.orderId, state: s.order.state } : null,
      stock: s.stock.slice(0, STATUS_MAX_SLOTS).map((r) => ({ slot: r.slot, sku: r.sku.slice(0, 60), count: r.count, full: configured.get(r.slot) ?? r.count, jammed: r.jammed })),
      prices: catalog.slice(0, STATUS_MAX_SLOTS).map((p) => ({ sku: p.sku.slice(0, 60), price: p.price, currency: p.currency })),
      faults: { active: (faults?.active() ?? []).slice(-50).map(fault), recent: (faults?.recent(20) ?? []).map(fault) },
      outboxPending: s.outboxPending,
      truncated: s.stock.length > STATUS_MAX_SLOTS || catalog.length > STATUS_MAX_SLOTS,
    };
  }

  async handleControl(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'status':
        return this.status();
      case 'select': {
        const slot = Number(req.args.slot);
        if (!Number.isInteger(slot) || slot <= 0) throw new Error('select needs a slot number: {"cmd":"select","args":{"slot":1}}');
        return this.select(slot);
      }
      case 'cancel':
        return this.cancel('technician');
      case 'journal': {
        const limit = req.args.limit === undefined ? 20 : Number(req.args.limit);
        if (!Number.isInteger(limit) || limit <= 0) throw new Error('journal limit must be a positive whole number');
        return this.journal(Math.min(limit, 1000));
      }
      case 'hardware':
        return this.hardwareReport();
      case 'test.dispense':
        return this.testDispense(req.args.slot);
      case 'test.buttons':
        return this.testButtons();
      case 'test.printer':
        return this.testPrinter();
      case 'stock':
        return this.stockCommand(req.args);
      case 'service': {
        if (typeof req.args.on !== 'boolean') throw new Error('service needs on: true|false: {"cmd":"service","args":{"on":true,"by":"ana"}}');
        return this.session.setService(req.args.on, technician(req.args.by));
      }
      case 'resolve': {
        const resolution = req.args.resolution;
        if (typeof req.args.orderId !== 'string' || (resolution !== 'dispensed' && resolution !== 'refund')) {
          throw new Error('resolve needs orderId and resolution dispensed|refund: {"cmd":"resolve","args":{"orderId":"ord_…","resolution":"refund","by":"ana"}}');
        }
        return this.session.resolve(req.args.orderId, resolution, technician(req.args.by));
      }
      case 'update.hold':
        return this.updateHold();
      case 'test.mdb-price':
        return this.testMdbPrice(req.args.slot, req.args.timeoutSeconds);
      case 'dex.read':
        if (!this.dex) throw new Error('this kiosk has no DEX port configured: add hardware.dex: { path: /dev/serial/by-id/... } (docs/mdb-dex.md)');
        return this.dex.read();
      case 'commands': {
        const limit = req.args.limit === undefined ? 20 : Number(req.args.limit);
        if (!Number.isInteger(limit) || limit <= 0) throw new Error('commands limit must be a positive whole number');
        return this.commands?.recent(Math.min(limit, 1000)) ?? [];
      }
    }
  }

  /** `qrkiosk stock show|set|refill`: the journal's counts, corrected by a technician. */
  stockCommand(args: Record<string, unknown>): { slots: Array<{ slot: number; sku: string; count: number; full: number }> } {
    const action = args.action ?? 'show';
    const configured = this.db.configuredStock();
    const slotArg = args.slot === undefined ? undefined : Number(args.slot);
    if (slotArg !== undefined && !configured.has(slotArg)) throw new Error(`slot ${String(args.slot)} is not in the config (slots: ${[...configured.keys()].join(', ')})`);
    if (action === 'set') {
      const count = Number(args.count);
      if (slotArg === undefined || !Number.isInteger(count) || count < 0) throw new Error('stock set needs a slot and a count of 0 or more: qrkiosk stock set 2 8');
      this.db.setStock(slotArg, count);
      this.logger.warn({ slot: slotArg, count, by: technician(args.by) }, `stock of slot ${slotArg} set to ${count}`);
    } else if (action === 'refill') {
      // the refill and the frame telling the relay are one journal transaction (exactly once)
      const by = technician(args.by);
      const skus = new Map(this.config.slots.map((s) => [s.slot, s.sku]));
      this.db.refillStock(slotArg, (changes) => {
        const refillId = `rfl_${randomBytes(12).toString('base64url')}`;
        return frame(
          { type: 'stock.refill' as const, refillId, at: Date.now(), by, slots: changes.slice(0, STATUS_MAX_SLOTS).map((c) => ({ ...c, sku: (skus.get(c.slot) ?? '?').slice(0, 60) })) },
          refillId,
        );
      });
      this.link.flush();
      this.logger.warn({ slot: slotArg ?? 'all', by }, `refilled ${slotArg === undefined ? 'every slot' : `slot ${slotArg}`}`);
    } else if (action !== 'show') {
      throw new Error(`stock action is show, set or refill, not ${String(action)}`);
    }
    if (action !== 'show') {
      this.session.refresh();
      this.reporter?.poke();
    }
    const counts = this.db.stock();
    return {
      slots: this.config.slots.map((s) => ({ slot: s.slot, sku: s.sku, count: counts.get(s.slot) ?? 0, full: configured.get(s.slot) ?? s.stock })),
    };
  }

  /**
   * `qrkiosk update`: holds the vend lock for as long as the updater's connection stays open. The
   * answer comes only once no vend is open; from the request on, no new sale starts.
   */
  async updateHold(): Promise<ControlStream> {
    const release = await this.session.holdForUpdate((o) => this.logger.warn(o, `update waits for order ${o.orderId} (${o.state}) to finish`));
    this.logger.warn('update lock taken: no sales until the agent restarts or the update gives up');
    return new ControlStream({ held: true, agentVersion: agentVersion() }, (_emit, end) => {
      this.streamEnders.add(end);
      return () => {
        this.streamEnders.delete(end);
        release();
      };
    });
  }

  /**
   * `qrkiosk test mdb-price <slot>`: the technician chooses the slot's item on the machine; the
   * price it asks is compared with the catalog (a wrong scale or decimal places is named) and the
   * request is denied: nothing is sold.
   */
  async testMdbPrice(slotArg: unknown, timeoutArg: unknown): Promise<PriceProbeResult | { ok: false; slot: number; reason: string; message: string }> {
    const slot = Number(slotArg);
    if (!Number.isInteger(slot) || slot <= 0) throw new Error('test.mdb-price needs a slot number: {"cmd":"test.mdb-price","args":{"slot":1}}');
    const seconds = timeoutArg === undefined ? 120 : Number(timeoutArg);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new Error('timeoutSeconds must be 1..600');
    if (!canProbePrice(this.dispenser)) throw new Error('the dispenser is not an MDB machine (hardware.dispenser.driver: mdb): there is no machine price to check');
    const cfg = this.config.slots.find((s) => s.slot === slot);
    if (!cfg) return { ok: false, slot, reason: 'unknown_slot', message: `slot ${slot} is not in slots[]` };
    const product = (this.link.welcome ?? this.db.loadWelcome()?.welcome)?.catalog.find((p) => p.sku === cfg.sku);
    if (!product) return { ok: false, slot, reason: 'price_unknown', message: `sku ${cfg.sku} has no catalog price yet (is the relay reachable?)` };
    const open = this.session.status().order;
    if (open) return { ok: false, slot, reason: 'vend_open', message: `a customer's order ${open.orderId} is ${open.state}: wait until it is over` };
    this.logger.warn({ slot }, `technician price check on slot ${slot}: choose its item on the machine`);
    return this.dispenser.probePrice(slot, product, seconds * 1000);
  }

  /**
   * An MDB machine: the slots' catalog prices against the VMC's max/min prices read at setup (a
   * machine whose decimal point disagrees with the reader's shows here before anyone buys).
   */
  private checkMdbCatalog(): void {
    if (!canProbePrice(this.dispenser)) return;
    const catalog = (this.link.welcome ?? this.db.loadWelcome()?.welcome)?.catalog;
    if (!catalog) return;
    const prices = this.config.slots.flatMap((s) => {
      const p = catalog.find((c) => c.sku === s.sku);
      return p ? [{ slot: s.slot, price: p.price, currency: p.currency }] : [];
    });
    this.dispenser.checkCatalog(prices);
  }

  /** After a vend: the customer's receipt. Paper only: a failure is logged, never retried into a second sale. */
  private printReceipt(orderId: string): void {
    const printer = this.printer;
    const o = printer ? this.db.getOrder(orderId) : undefined;
    if (!printer || !o) return;
    const catalog = (this.link.welcome ?? this.db.loadWelcome()?.welcome)?.catalog;
    void printer.print({
      orderId,
      product: catalog?.find((p) => p.sku === o.sku)?.name ?? o.sku,
      amount: o.amount,
      currency: o.currency,
      paymentId: o.paymentId,
      time: receiptTime(Date.now()),
      kioskId: this.config.kioskId,
      ...(o.receiptUrl ? { link: o.receiptUrl } : {}),
    });
  }

  /** `qrkiosk test printer`: a sample receipt on the real printer. */
  async testPrinter(): Promise<PrintResult> {
    if (!this.printer) throw new Error('this kiosk has no receipt printer: add hardware.printer (docs/config.md)');
    return this.printer.printTest(this.config.kioskId, receiptTime(Date.now()));
  }

  hardwareReport(): HardwareReport & { kioskId: string } {
    const r = this.hardware?.report(this.config, this.buttons, this.dispenser, this.display) ?? {
      profile: this.config.hardware.profile ?? null,
      gpio: null,
      devices: [],
      faults: { active: [], recent: [] },
    };
    return {
      kioskId: this.config.kioskId,
      ...r,
      devices: [...r.devices, ...(this.printer ? [this.printer.describe()] : []), ...(this.dex ? [this.dex.describe()] : [])],
    };
  }

  /** `qrkiosk test dispense <slot>`: the real motor and sensor, never while a customer's vend is open. */
  async testDispense(
    slotArg: unknown,
  ): Promise<{ ok: true; slot: number; result: string; pulses: number; detail?: string } | { ok: false; reason: string; message: string }> {
    const slot = Number(slotArg);
    if (!Number.isInteger(slot) || slot <= 0) throw new Error('test.dispense needs a slot number: {"cmd":"test.dispense","args":{"slot":1}}');
    const open = this.session.status().order;
    if (open) {
      return {
        ok: false,
        reason: 'vend_open',
        message: `a customer's order ${open.orderId} is ${open.state}: wait until it is over (qrkiosk status), or cancel it if unpaid (qrkiosk cancel)`,
      };
    }
    if (this.testDispensing) return { ok: false, reason: 'busy', message: 'another test dispense is running' };
    this.testDispensing = true;
    this.logger.warn({ slot }, `technician test dispense on slot ${slot}`);
    try {
      const outcome = await this.dispenser.vend(slot);
      this.logger.warn({ slot, ...outcome }, `technician test dispense on slot ${slot}: ${outcome.result}`);
      return { ok: true, slot, result: outcome.result, pulses: outcome.pulses, ...(outcome.detail ? { detail: outcome.detail } : {}) };
    } catch (err) {
      if (err instanceof DispenserBusy) return { ok: false, reason: 'busy', message: 'the dispenser is vending right now' };
      this.dispenser.safe();
      throw err;
    } finally {
      this.testDispensing = false;
    }
  }

  /** `qrkiosk test buttons`: every press, release, cancel and fault, live, until the viewer leaves. */
  testButtons(): ControlStream {
    const report = this.hardwareReport();
    return new ControlStream(
      { kioskId: this.config.kioskId, buttons: report.devices.find((d) => d.role === 'buttons') ?? null, salesPaused: true },
      (emit, end) => {
        this.buttonTests++;
        const offs: Array<() => void> = [
          this.buttons.onPress((slot) => emit({ type: 'press', at: Date.now(), slot })),
          this.buttons.onCancel(() => emit({ type: 'cancel', at: Date.now() })),
        ];
        if (observesInputs(this.buttons)) offs.push(this.buttons.onInput((e) => emit({ type: 'input', ...e })));
        if (this.hardware) offs.push(this.hardware.faults.onFault((f) => emit({ type: 'fault', ...f })));
        this.streamEnders.add(end);
        this.logger.info('technician is testing the buttons: presses are not sold until the test ends');
        return () => {
          this.streamEnders.delete(end);
          for (const off of offs) off();
          this.buttonTests--;
          if (this.buttonTests === 0) this.logger.info('button test over: presses sell again');
        };
      },
    );
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const end of [...this.streamEnders]) end('agent stopping');
      for (const u of this.unsubscribe) u();
      this.reporter?.close();
      this.buttons.close();
      await this.control?.close();
      await this.dex?.close();
      // a remote test vend finishes its pulse, like a customer's vend
      await this.commands?.settle();
      // let a vend in progress finish and its result reach the outbox (and the relay if online)
      await this.session.close();
      // the receipt of the last vend finishes printing
      await this.printer?.idle();
      await this.link.close();
      this.dispenser.safe();
      this.dispenser.close();
      // outputs to their safe level, gpiomon/gpioset children stopped
      await this.hardware?.close();
      this.display.close();
      this.db.close();
      this.logger.info('agent stopped');
    })();
    return this.closing;
  }
}

export async function startAgent(config: AgentConfig | AgentConfigInput, deps: AgentDeps = {}): Promise<Agent> {
  const cfg = parseAgentConfig(config);
  const logger = deps.logger ?? createLogger('agent');
  const token = resolveToken(cfg);
  const journal = new Journal(cfg.journal.path);
  let session: VendSession | undefined;
  let commands: RemoteCommands | undefined;
  let hardware: Hardware | undefined;
  try {
    journal.syncStock(cfg.slots);
    const link = new RelayLink({
      url: cfg.relay.url,
      token,
      kioskId: cfg.kioskId,
      agentVersion: agentVersion(),
      backoff: cfg.relay.backoff,
      pingIntervalSeconds: cfg.relay.pingIntervalSeconds,
      journal,
      logger,
      openOrders: () => session!.openOrdersForHello(),
      apply: (msg) => session!.apply(msg),
      onCommand: (msg) => commands!.receive(msg),
      ...(deps.stableAfterMs !== undefined ? { stableAfterMs: deps.stableAfterMs } : {}),
    });
    // Never touch the pins while another agent runs here: driving its motor outputs "safe"
    // would cut a pulse it is giving a paying customer.
    if (deps.control !== false && (await answers(cfg.control.socket))) {
      throw new Error(`another agent is already listening on ${cfg.control.socket}: stop it first (systemctl stop qrkiosk-agent)`);
    }
    hardware = await openHardware(cfg, {
      logger,
      ...(deps.hardware ? { deps: deps.hardware } : {}),
      have: { buttons: deps.buttons !== undefined, dispenser: deps.dispenser !== undefined },
      onPulse: () => crashPoint('pulse'),
    });
    const display = deps.display ?? (await buildDisplay(cfg, logger));
    const dispenser = deps.dispenser ?? buildDispenser(cfg, logger, hardware);
    const buttons = deps.buttons ?? buildButtons(cfg, logger, hardware);
    session = new VendSession({
      config: cfg,
      journal,
      link,
      dispenser,
      display,
      logger,
      ...(deps.timings ? { timings: deps.timings } : {}),
    });
    const agent = new AgentImpl(cfg, journal, link, session, buttons, display, dispenser, logger);
    agent.hardware = hardware;
    agent.commandKey = cfg.relay.commandKey ? parsePublicKeyText(cfg.relay.commandKey) : undefined;
    agent.reporter = new StatusReporter({ link, snapshot: () => agent.statusBody(), logger });
    commands = agent.commands = new RemoteCommands({
      kioskId: cfg.kioskId,
      trustedKey: agent.commandKey,
      journal,
      session,
      link,
      testVend: (slot) => agent.testDispense(slot),
      logger,
      changed: () => agent.reporter?.poke(),
    });
    // the serial/printer builders are loaded only for a kiosk that has a printer
    const printerCfg = cfg.hardware.printer;
    agent.printer =
      printerCfg && printerCfg.driver !== 'none'
        ? (await import('../devices/serial/build.js')).receiptPrinterFor(printerCfg, cfg.locale ?? 'es', { logger, faults: hardware.faults })
        : undefined;
    agent.wire();
    if (deps.control !== false) {
      // First, because it also tells us whether another agent is running on this kiosk: two
      // agents recovering the same journal could both pulse a paid order.
      try {
        agent.control = await ControlServer.start({
          path: cfg.control.socket,
          ...(cfg.control.group !== undefined ? { group: cfg.control.group } : {}),
          handler: (req) => agent.handleControl(req),
          logger: logger.child({ part: 'control' }),
        });
      } catch (err) {
        await agent.close();
        throw err;
      }
    }
    // settle the previous run's open orders before talking to the relay, so hello and the
    // outbox already tell the truth
    session.recover();
    commands.recover();
    session.onOffline();
    link.start();
    buttons.start();
    if (cfg.hardware.dex) {
      agent.dex = new DexAuditor({
        config: cfg.hardware.dex,
        journal,
        flush: () => link.flush(),
        logger,
        faults: hardware.faults,
        cashlessDevice: cfg.hardware.mdb ? (cfg.hardware.mdb.address ?? 1) : null,
        ...(deps.dexRead ? { read: deps.dexRead } : {}),
      });
      agent.dex.start();
    }
    logger.info({ kioskId: cfg.kioskId, relay: cfg.relay.url, slots: cfg.slots.length }, 'agent started');
    return agent;
  } catch (err) {
    if (journal.db.open) journal.close();
    await hardware?.close();
    throw err;
  }
}
