import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Catalog, type Product } from '../core/catalog.js';
import { assertCurrency } from '../core/money.js';
import { IllegalTransition } from '../core/state-machine.js';
import type { CommandEvent } from '../core/kiosk-command.js';
import { PROTOCOL_VERSION, type CommandRefused, type CommandResult } from '../protocol/messages.js';
import { CommandAction, COMMAND_MAX_TTL_MS, describeAction, type CommandBody } from '../protocol/signed-command.js';
import type { Logger } from '../runtime/log.js';
import type { CommandSigner } from './command-key.js';
import type { CommandPatch, CommandRecord, FleetRecorder, KioskPrices } from './fleet-recorder.js';

// The relay's side of the operator's commands to kiosks (docs/console-kiosk.md): signs each one,
// records it, sends it to the kiosk whenever it is connected until the kiosk has it or it expires,
// and records what the kiosk answered, moving the command through core/kiosk-command.ts.
//
// A price the kiosk CONFIRMED applying becomes that kiosk's price at the relay too (catalogFor):
// its orders are priced with it and its welcomes carry it. Not before: between the command and the
// confirmation the kiosk still sells at the old price and the relay must accept that. The kiosk
// sends its confirmation before any order priced with it (one ordered outbox), and the price is
// switched synchronously on arrival, before any later frame of that kiosk is handled.

export class CommandInputError extends Error {
  override name = 'CommandInputError';
}

export interface KioskCommandsDeps {
  recorder: FleetRecorder;
  signer: CommandSigner;
  logger: Logger;
  /** relay business clock */
  now: () => number;
  /** default validity (commands.ttlSeconds) */
  ttlMs: number;
  /** whether the relay knows this kiosk (unknown ids are refused at issue) */
  kioskExists(kioskId: string): boolean | Promise<boolean>;
}

/** How the commands reach kiosks: the hub (set once it exists). */
export interface CommandLink {
  isOnline(kioskId: string): boolean;
  /** writes a frame to the kiosk's live socket; false when it has none */
  sendTo(kioskId: string, frame: object): boolean;
  /** sends the kiosk a fresh welcome (its prices changed) */
  rewelcome(kioskId: string): boolean | Promise<boolean>;
}

export interface IssueOptions {
  /** the operator asking (recorded, signed, shown on the kiosk's journal) */
  by: string;
  reason?: string;
  /** validity; default commands.ttlSeconds */
  ttlSeconds?: number;
}

export interface KioskCommandsEvents {
  change: [record: CommandRecord];
}

export class KioskCommands extends EventEmitter<KioskCommandsEvents> {
  private link: CommandLink | undefined;
  /** confirmed per-kiosk prices (loaded from the recorder at start, changed on confirmation) */
  private readonly prices = new Map<string, KioskPrices>();
  /** the actions of commands still waiting for a verdict, so a confirmation can switch prices synchronously */
  private readonly open = new Map<string, { kioskId: string; action: CommandAction }>();
  /** counts confirmations handled, so a slower re-read never overwrites a newer one */
  private priceChanges = 0;
  private readonly log: Logger;

  constructor(private readonly deps: KioskCommandsDeps) {
    super();
    this.log = deps.logger.child({ part: 'commands' });
  }

  get keyId(): string {
    return this.deps.signer.keyId;
  }

  attach(link: CommandLink): void {
    this.link = link;
  }

  /** Before kiosks connect: the prices they confirmed, the commands still waiting. */
  async load(): Promise<void> {
    for (const [k, p] of await this.deps.recorder.kioskPrices()) this.prices.set(k, p);
    for (const c of await this.deps.recorder.commandsIn(['issued', 'delivered', 'expired'])) this.open.set(c.id, { kioskId: c.kioskId, action: c.action });
  }

  // ---- issuing ------------------------------------------------------------------------------------

  /** Signs and records a command, and sends it now if the kiosk is connected (else when it comes back, until the expiry). */
  async issue(kioskId: string, actionInput: unknown, opts: IssueOptions): Promise<CommandRecord> {
    if (!(await this.deps.kioskExists(kioskId))) throw new CommandInputError(`no kiosk "${kioskId}" at this relay (qrkiosk relay kiosk list)`);
    const parsed = CommandAction.safeParse(actionInput);
    if (!parsed.success) {
      throw new CommandInputError(`command not understood: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'kind'}: ${i.message}`).join('; ')}`);
    }
    const by = opts.by.trim();
    if (!by || by.length > 100) throw new CommandInputError('say who asks for the command (by: the operator login, 1 to 100 characters)');
    const ttlMs = opts.ttlSeconds === undefined ? this.deps.ttlMs : opts.ttlSeconds * 1000;
    if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > COMMAND_MAX_TTL_MS) throw new CommandInputError(`ttlSeconds must be a whole number from 1 to ${COMMAND_MAX_TTL_MS / 1000}`);
    const now = this.deps.now();
    const action = parsed.data;
    const body: CommandBody = {
      commandId: `cmd_${randomBytes(12).toString('base64url')}`,
      kioskId,
      issuedAt: now,
      expiresAt: now + ttlMs,
      issuedBy: by,
      ...(opts.reason ? { reason: opts.reason.slice(0, 300) } : {}),
      action,
    };
    const signed = this.deps.signer.sign(body);
    const rec: CommandRecord = {
      id: body.commandId,
      kioskId,
      kind: action.kind,
      action,
      issuedBy: by,
      reason: body.reason ?? null,
      issuedAt: body.issuedAt,
      expiresAt: body.expiresAt,
      state: 'issued',
      // the frame id is the command id: the kiosk's ack names it
      frame: JSON.stringify({ v: PROTOCOL_VERSION, id: body.commandId, type: 'command', ...signed }),
      deliveredAt: null,
      kioskAt: null,
      answeredAt: null,
      refusal: null,
      result: null,
      message: null,
      history: [{ at: now, from: null, to: 'issued', event: 'issue', detail: `${describeAction(action)}, by ${by}${body.reason ? ` (${body.reason})` : ''}` }],
    };
    await this.deps.recorder.insertCommand(rec);
    this.open.set(rec.id, { kioskId, action });
    this.log.warn({ commandId: rec.id, kioskId, kind: action.kind, by }, `command ${rec.id} to kiosk ${kioskId}: ${describeAction(action)} (by ${by})`);
    this.emit('change', rec);
    this.send(rec);
    return rec;
  }

  private send(rec: CommandRecord): boolean {
    const link = this.link;
    if (!link?.isOnline(rec.kioskId)) return false;
    return link.sendTo(rec.kioskId, JSON.parse(rec.frame) as object);
  }

  /** The kiosk said hello: what it has not received yet goes again, oldest first, if still valid. */
  async resend(kioskId: string): Promise<number> {
    const now = this.deps.now();
    let n = 0;
    for (const c of await this.deps.recorder.commandsIn(['issued'])) {
      if (c.kioskId !== kioskId || c.expiresAt < now) continue;
      if (this.send(c)) n++;
    }
    return n;
  }

  /**
   * Commands recorded by another process (`qrkiosk relay kiosk service|stock|test-vend|price`, or
   * another relay instance): this instance did not issue them, so it sends them now to a kiosk it
   * holds the connection of, and follows their answers. Run on the relay's tick; resolves how many
   * it picked up.
   */
  async pickUp(): Promise<number> {
    const now = this.deps.now();
    let n = 0;
    for (const c of await this.deps.recorder.commandsIn(['issued'])) {
      if (this.open.has(c.id) || c.expiresAt < now) continue;
      this.open.set(c.id, { kioskId: c.kioskId, action: c.action });
      this.log.info({ commandId: c.id, kioskId: c.kioskId, kind: c.kind, by: c.issuedBy }, `command ${c.id} to kiosk ${c.kioskId} recorded elsewhere (${c.issuedBy}): picked up`);
      this.emit('change', c);
      this.send(c);
      n++;
    }
    return n;
  }

  /** Commands not delivered by their expiry: the relay stops sending them. */
  async expireDue(): Promise<number> {
    const now = this.deps.now();
    let n = 0;
    for (const c of await this.deps.recorder.commandsIn(['issued'])) {
      if (c.expiresAt >= now) continue;
      if (await this.move(c.id, 'expired', {}, 'not delivered before its expiry: no longer sent')) n++;
    }
    return n;
  }

  // ---- the kiosk's answers -------------------------------------------------------------------------

  /** An ack from the kiosk: true when it was for a command (the hub's own outbox acks are not). */
  onAck(kioskId: string, ackId: string): boolean {
    const open = this.open.get(ackId);
    if (!open || open.kioskId !== kioskId) return false;
    void this.delivered(ackId, 'the kiosk acked the frame').catch((err: unknown) => this.log.error({ err, commandId: ackId }, `could not record the delivery of command ${ackId}`));
    return true;
  }

  private async delivered(id: string, detail: string): Promise<void> {
    const c = await this.deps.recorder.getCommand(id);
    if (c?.state === 'issued') await this.move(id, 'ack', { deliveredAt: this.deps.now() }, detail);
  }

  /** command.result: the kiosk's verdict on a command it verified. Prices switch here, before any await. */
  async onResult(kioskId: string, msg: CommandResult): Promise<void> {
    const open = this.open.get(msg.commandId);
    const adoptedNow = !!open && open.kioskId === kioskId && msg.outcome === 'applied';
    if (adoptedNow) this.adoptPrices(kioskId, msg.commandId, open.action);
    const c = await this.deps.recorder.getCommand(msg.commandId);
    if (!c || c.kioskId !== kioskId) {
      this.log.warn({ kioskId, commandId: msg.commandId, outcome: msg.outcome }, `kiosk ${kioskId} answered command ${msg.commandId}, which this relay did not issue to it`);
      return;
    }
    // issued by another relay instance (or before a restart that lost `open`): adopted now
    if (!adoptedNow && msg.outcome === 'applied' && c.state !== 'applied') this.adoptPrices(kioskId, c.id, c.action);
    const detail = `kiosk ${msg.outcome} it at ${new Date(msg.at).toISOString()} (kiosk clock): ${msg.message}`;
    if (c.history.some((h) => h.detail === detail)) {
      // the same verdict again: the agent re-sends its unacked outbox after every welcome
      this.log.debug({ kioskId, commandId: c.id }, `kiosk ${kioskId} sent its verdict on command ${c.id} again: kept once`);
      return;
    }
    const event: CommandEvent = msg.outcome === 'applied' ? 'applied' : msg.reason === 'expired' ? 'expired' : 'refused';
    const patch: CommandPatch = {
      kioskAt: msg.at,
      answeredAt: this.deps.now(),
      message: msg.message,
      result: msg.result ?? null,
      ...(msg.outcome === 'refused' ? { refusal: { reason: msg.reason ?? 'refused', message: msg.message } } : {}),
    };
    if (c.state === 'expired' && event === 'expired') {
      await this.deps.recorder.noteCommand(c.id, this.deps.now(), detail);
    } else if (!(await this.move(c.id, event, patch, detail))) {
      return;
    }
    if (msg.outcome === 'applied') {
      if (this.prices.has(kioskId) && (c.kind === 'price.set' || c.kind === 'catalog.set')) {
        await this.deps.recorder.setKioskPrices(kioskId, this.prices.get(kioskId)!);
        // a welcome sent before the confirmation carried the old prices: this one carries the new
        await this.link?.rewelcome(kioskId);
      }
      this.log.info({ kioskId, commandId: c.id, kind: c.kind, appliedAt: msg.at }, `kiosk ${kioskId} applied command ${c.id}: ${msg.message}`);
    } else {
      this.log.warn({ kioskId, commandId: c.id, kind: c.kind, reason: msg.reason }, `kiosk ${kioskId} refused command ${c.id} (${msg.reason}): ${msg.message}`);
    }
  }

  /** command.refused: a frame the kiosk would not take. Returns whether the command was ours. */
  async onRefused(kioskId: string, msg: CommandRefused): Promise<boolean> {
    // our command frames carry the command id as their frame id
    const c = await this.deps.recorder.getCommand(msg.commandId ?? msg.frameId);
    // a refused frame is ours only if it is the very frame we sent (a forgery may name our command id);
    // a replay is only ever reported for a command whose signature the kiosk verified
    const ours = !!c && c.kioskId === kioskId && (msg.reason === 'replayed' || msg.frameId === c.id);
    if (!ours) {
      this.log.warn({ kioskId, frameId: msg.frameId, reason: msg.reason }, `kiosk ${kioskId} refused a command frame this relay did not issue to it (${msg.reason}): ${msg.message}`);
      return false;
    }
    const now = this.deps.now();
    if (msg.reason === 'replayed') {
      // the kiosk has it: delivered (an ack of ours was lost), its verdict is on the way
      if (c.state === 'issued') await this.move(c.id, 'ack', { deliveredAt: now }, `sent again, the kiosk already had it (${msg.first?.state ?? '?'})`);
      else await this.deps.recorder.noteCommand(c.id, now, `the kiosk refused a replay of it: ${msg.message}`);
      return true;
    }
    // unsigned, bad signature, no key, wrong kiosk: this kiosk will never take it
    if (c.state === 'issued' || c.state === 'delivered') {
      await this.move(c.id, 'refused', { answeredAt: now, refusal: { reason: msg.reason, message: msg.message } }, `kiosk refused the frame (${msg.reason}): ${msg.message}`);
      this.log.error({ kioskId, commandId: c.id, reason: msg.reason }, `kiosk ${kioskId} refused command ${c.id} (${msg.reason}): ${msg.message}`);
    } else {
      await this.deps.recorder.noteCommand(c.id, now, `kiosk refused the frame (${msg.reason}): ${msg.message}`);
    }
    return true;
  }

  private async move(id: string, event: CommandEvent, patch: CommandPatch, detail: string): Promise<boolean> {
    try {
      const rec = await this.deps.recorder.transitionCommand(id, event, this.deps.now(), patch, detail);
      if (rec.state === 'applied' || rec.state === 'refused') this.open.delete(id);
      this.emit('change', rec);
      return true;
    } catch (err) {
      if (err instanceof IllegalTransition) {
        // a second verdict on a finished command: kept in its history, nothing changes
        this.log.warn({ commandId: id, from: err.from, event }, `command ${id}: ${err.message}; noted`);
        await this.deps.recorder.noteCommand(id, this.deps.now(), `${event} ignored in state ${err.from}: ${detail}`);
        return false;
      }
      throw err;
    }
  }

  // ---- prices -------------------------------------------------------------------------------------

  private adoptPrices(kioskId: string, commandId: string, a: CommandAction): void {
    this.priceChanges++;
    if (a.kind === 'catalog.set') this.prices.set(kioskId, { catalog: a.entries, prices: {}, commandId });
    else if (a.kind === 'price.set') {
      const cur = this.prices.get(kioskId);
      this.prices.set(kioskId, { catalog: cur?.catalog ?? null, prices: { ...cur?.prices, [a.sku]: { price: a.price, currency: a.currency } }, commandId });
    }
  }

  /**
   * Re-reads one kiosk's confirmed prices (another relay instance may have recorded a change while
   * it was connected there). Returns whether they differ from what this instance had.
   */
  async refreshPrices(kioskId: string): Promise<boolean> {
    const version = this.priceChanges;
    const stored = (await this.deps.recorder.kioskPrices()).get(kioskId);
    // a confirmation handled meanwhile is newer than what was read: keep it
    if (this.priceChanges !== version) return false;
    const before = JSON.stringify(this.prices.get(kioskId) ?? null);
    if (stored) this.prices.set(kioskId, stored);
    else this.prices.delete(kioskId);
    return JSON.stringify(stored ?? null) !== before;
  }

  /** The kiosk's price list: the relay's catalog with what this kiosk confirmed applying laid over it. */
  catalogFor(kioskId: string, base: Catalog): Catalog {
    const own = this.prices.get(kioskId);
    if (!own) return base;
    const products: Product[] = own.catalog
      ? own.catalog.map((e) => ({ sku: e.sku, name: e.name, price: e.price, currency: assertCurrency(e.currency) }))
      : base.list();
    return new Catalog(
      products.map((p) => {
        const o = own.prices[p.sku];
        return o && o.currency === p.currency ? { ...p, price: o.price } : p;
      }),
    );
  }

  /** newest first */
  list(kioskId: string, limit = 50): Promise<CommandRecord[]> {
    return this.deps.recorder.commandsOf(kioskId, limit);
  }

  get(id: string): Promise<CommandRecord | undefined> {
    return this.deps.recorder.getCommand(id);
  }
}
