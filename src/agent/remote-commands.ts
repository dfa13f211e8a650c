import type { KeyObject } from 'node:crypto';
import { frame } from '../protocol/codec.js';
import { AgentMessage, type CommandFrame, type CommandRefused, type CommandResult, type CommandVerdictReason } from '../protocol/messages.js';
import { claimedId, COMMAND_CLOCK_SKEW_MS, describeAction, verifyCommand, type CommandBody } from '../protocol/signed-command.js';
import type { Logger } from '../runtime/log.js';
import type { CommandRow, Journal } from './journal.js';
import type { VendSession } from './session.js';

// The kiosk's side of the operator's commands (docs/console-kiosk.md). A command frame is taken
// only if it is signed by the key in agent.yaml (relay.commandKey), names this kiosk, has not been
// seen before (the journal's `commands` table, so a restart does not forget) and has not expired.
// A verified command is journaled, applied and its verdict queued for the relay in ONE journal
// transaction, then acked: the relay hears exactly once what became of it, whatever crashes.
// A frame that fails before that (unsigned, forged, another kiosk's, a replay) is answered with
// command.refused, which is not queued: a flood of forgeries must not fill the outbox.

type ResultValues = NonNullable<CommandResult['result']>;

export interface TestVendOutcome {
  ok: boolean;
  result?: string;
  pulses?: number;
  detail?: string;
  reason?: string;
  message?: string;
}

export interface RemoteCommandsDeps {
  kioskId: string;
  /** relay.commandKey of agent.yaml; undefined: every command is refused (no_key) */
  trustedKey: KeyObject | undefined;
  journal: Journal;
  session: Pick<VendSession, 'setService' | 'catalog' | 'applyCatalog' | 'openOrderId' | 'refresh'>;
  link: { sendUnreliable(f: AgentMessage): boolean; flush(): void };
  /** the real motor, as `qrkiosk test dispense` runs it */
  testVend(slot: number): Promise<TestVendOutcome>;
  logger: Logger;
  /** a command changed something the status snapshot shows */
  changed?(): void;
  now?: () => number;
}

type Verdict = { reason: CommandVerdictReason; message: string };
type Applied = { message: string; result?: ResultValues };

export class RemoteCommands {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly deps: RemoteCommandsDeps) {
    this.log = deps.logger.child({ part: 'commands' });
    this.now = deps.now ?? Date.now;
  }

  /** One command frame from the relay. Never throws for a bad frame: it is refused with a reason. */
  receive(f: CommandFrame): void {
    const { trustedKey, journal } = this.deps;
    if (!trustedKey) {
      return this.reject(f, claimedId(f.payload), 'no_key', 'this kiosk has no relay.commandKey in agent.yaml, so it cannot check who signed a command: write the line printed by `qrkiosk relay command-key`');
    }
    const v = verifyCommand(f, trustedKey);
    if (!v.ok) return this.reject(f, v.commandId, v.reason, v.message);
    const body = v.body;
    if (body.kioskId !== this.deps.kioskId) {
      return this.reject(f, body.commandId, 'wrong_kiosk', `command is for kiosk ${body.kioskId}, this is ${this.deps.kioskId}`);
    }
    const seen = journal.getCommand(body.commandId);
    if (seen) {
      // Already journaled: never applied twice. The ack tells a relay that lost our first ack
      // that we have it (our verdict is in the outbox or already delivered).
      this.ack(f.id);
      return this.reject(f, body.commandId, 'replayed', `command ${body.commandId} was already received at ${new Date(seen.receivedAt).toISOString()} and ${seen.state}: not applied again`, {
        state: seen.state,
        at: seen.finishedAt ?? seen.receivedAt,
      });
    }
    const base = { id: body.commandId, kind: body.action.kind, issuedBy: body.issuedBy, issuedAt: body.issuedAt, expiresAt: body.expiresAt, payload: f.payload };
    const later = journal.tx(() => {
      const at = this.now();
      const refusal = this.check(body, at);
      if (refusal) {
        journal.insertCommand({ ...base, at, state: 'refused', ...refusal }, [this.result(body.commandId, 'refused', at, refusal.message, refusal.reason)]);
        this.log.warn({ commandId: body.commandId, kind: body.action.kind, reason: refusal.reason }, `refused relay command ${body.commandId} (${describeAction(body.action)}): ${refusal.message}`);
        return undefined;
      }
      journal.insertCommand({ ...base, at, state: 'running' });
      // the motor runs after the commit and the ack: a crash from here on never runs it again
      if (body.action.kind === 'test.vend') return body.action.slot;
      const done = this.applyNow(body);
      journal.finishCommand(body.commandId, 'done', { at, message: done.message, ...(done.result ? { result: done.result } : {}), outbox: [this.result(body.commandId, 'applied', at, done.message, undefined, done.result)] });
      this.log.warn({ commandId: body.commandId, kind: body.action.kind, by: body.issuedBy }, `applied relay command ${body.commandId} from ${body.issuedBy}: ${done.message}`);
      return undefined;
    });
    this.ack(f.id);
    this.deps.link.flush();
    this.deps.changed?.();
    if (later !== undefined) this.track(this.runTestVend(body, later));
  }

  /** What is wrong with a verified command on this kiosk now; undefined when it can be applied. */
  private check(b: CommandBody, now: number): Verdict | undefined {
    if (now > b.expiresAt) {
      return { reason: 'expired', message: `expired at ${new Date(b.expiresAt).toISOString()}, received at ${new Date(now).toISOString()} (kiosk clock): not applied` };
    }
    if (b.issuedAt > now + COMMAND_CLOCK_SKEW_MS) {
      return { reason: 'not_yet_valid', message: `issued at ${new Date(b.issuedAt).toISOString()}, ahead of this kiosk's clock (${new Date(now).toISOString()}): check the clocks (timedatectl)` };
    }
    const a = b.action;
    const configured = this.deps.journal.configuredStock();
    const slots = () => [...configured.keys()].join(', ');
    switch (a.kind) {
      case 'service':
        return undefined;
      case 'stock.set': {
        const unknown = a.slots.find((s) => !configured.has(s.slot));
        return unknown ? { reason: 'invalid', message: `slot ${unknown.slot} is not on this kiosk (slots ${slots()})` } : undefined;
      }
      case 'test.vend': {
        if (!configured.has(a.slot)) return { reason: 'invalid', message: `slot ${a.slot} is not on this kiosk (slots ${slots()})` };
        const open = this.deps.session.openOrderId();
        return open ? { reason: 'busy', message: `a customer's order ${open} is open: send the test vend again when it is over` } : undefined;
      }
      case 'price.set': {
        const catalog = this.deps.session.catalog();
        if (!catalog) return { reason: 'invalid', message: 'this kiosk has no catalog yet (it has never been welcomed by the relay)' };
        const p = catalog.find((c) => c.sku === a.sku);
        if (!p) return { reason: 'invalid', message: `product ${a.sku} is not in this kiosk's catalog (${catalog.map((c) => c.sku).join(', ')}): use a catalog change to add it` };
        if (p.currency !== a.currency) return { reason: 'invalid', message: `product ${a.sku} is priced in ${p.currency}, not ${a.currency}` };
        return undefined;
      }
      case 'catalog.set': {
        const skus = new Set<string>();
        for (const e of a.entries) {
          if (skus.has(e.sku)) return { reason: 'invalid', message: `product ${e.sku} is listed twice` };
          if (e.price <= 0) return { reason: 'invalid', message: `product ${e.sku} has price ${e.price}: it must be more than 0` };
          skus.add(e.sku);
        }
        const currencies = new Set(a.entries.map((e) => e.currency));
        return currencies.size > 1 ? { reason: 'invalid', message: `a kiosk sells in one currency, the catalog has ${[...currencies].join(', ')}` } : undefined;
      }
    }
  }

  /** Applies a checked command inside the journal transaction that records it. */
  private applyNow(b: CommandBody): Applied {
    const a = b.action;
    const { session, journal } = this.deps;
    switch (a.kind) {
      case 'service': {
        const r = session.setService(!a.inService, `${b.issuedBy} (relay command ${b.commandId})`, 'relay');
        return {
          message: a.inService ? 'in service: selling' : `out of service: no new sales${r.openOrder ? `, order ${r.openOrder} still finishes` : ''}`,
          result: { inService: a.inService, openOrder: r.openOrder },
        };
      }
      case 'stock.set': {
        const before = journal.stock();
        const result: ResultValues = {};
        for (const s of a.slots) {
          journal.setStock(s.slot, s.count);
          result[`slot ${s.slot}`] = `${before.get(s.slot) ?? 0} -> ${s.count}`;
        }
        journal.afterCommit(() => session.refresh());
        return { message: `stock set: ${a.slots.map((s) => `slot ${s.slot} = ${s.count}`).join(', ')}`, result };
      }
      case 'price.set': {
        const catalog = session.catalog()!;
        const before = catalog.find((c) => c.sku === a.sku)!.price;
        session.applyCatalog(catalog.map((c) => (c.sku === a.sku ? { ...c, price: a.price } : c)));
        return { message: `${a.sku} now ${a.price} ${a.currency} (minor units), was ${before}: the next order is priced with it`, result: { sku: a.sku, price: a.price, before } };
      }
      case 'catalog.set':
        session.applyCatalog(a.entries);
        return { message: `catalog replaced: ${a.entries.length} products`, result: { products: a.entries.length } };
      case 'test.vend':
        throw new Error('a test vend runs after the commit');
    }
  }

  private async runTestVend(b: CommandBody, slot: number): Promise<void> {
    this.log.warn({ commandId: b.commandId, slot, by: b.issuedBy }, `test vend on slot ${slot} asked by ${b.issuedBy} through the relay`);
    let out: TestVendOutcome;
    try {
      out = await this.deps.testVend(slot);
    } catch (err) {
      out = { ok: true, result: 'vend_failed', pulses: 0, detail: `dispenser error: ${(err as Error).message}` };
    }
    const { journal } = this.deps;
    const at = this.now();
    if (!out.ok) {
      const message = out.message ?? 'the dispenser is busy';
      journal.finishCommand(b.commandId, 'refuse', { at, reason: 'busy', message, outbox: [this.result(b.commandId, 'refused', at, message, 'busy')] });
    } else {
      const result: ResultValues = { slot, result: out.result ?? 'unknown', pulses: out.pulses ?? 0, ...(out.detail ? { detail: out.detail.slice(0, 200) } : {}) };
      const message = `test vend on slot ${slot}: ${out.result}${out.detail ? ` (${out.detail})` : ''}`;
      journal.finishCommand(b.commandId, 'done', { at, message, result, outbox: [this.result(b.commandId, 'applied', at, message, undefined, result)] });
    }
    this.deps.link.flush();
    this.deps.changed?.();
  }

  /**
   * At start: a test vend the previous run died in is not run again (the motor may have turned);
   * it is reported applied with an unknown result. Runs before the link starts.
   */
  recover(): void {
    for (const c of this.deps.journal.runningCommands()) {
      const message = 'the agent restarted while it ran: not run again, result unknown (check the slot)';
      const result: ResultValues = { result: 'vend_unknown' };
      const at = this.now();
      this.deps.journal.finishCommand(c.id, 'interrupted', { at, message, result, outbox: [this.result(c.id, 'applied', at, message, undefined, result)] });
      this.log.warn({ commandId: c.id, kind: c.kind }, `relay command ${c.id} (${c.kind}) was interrupted by a restart: ${message}`);
    }
  }

  recent(limit = 20): CommandRow[] {
    return this.deps.journal.recentCommands(limit);
  }

  /** Waits for a test vend in progress (shutdown must not cut a motor mid-pulse). */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private track(p: Promise<void>): void {
    const q = p.catch((err: unknown) => this.log.error({ err }, `relay command failed unexpectedly: ${(err as Error).message}`));
    this.running.add(q);
    void q.finally(() => this.running.delete(q));
  }

  private result(commandId: string, outcome: 'applied' | 'refused', at: number, message: string, reason?: CommandVerdictReason, result?: ResultValues): AgentMessage {
    // checked here: a frame the relay would refuse would sit in the outbox for ever
    return AgentMessage.parse(
      frame({
        type: 'command.result' as const,
        commandId,
        outcome,
        at,
        message: message.slice(0, 500),
        ...(reason ? { reason } : {}),
        ...(result ? { result } : {}),
      }),
    );
  }

  private reject(f: CommandFrame, commandId: string | undefined, reason: CommandRefused['reason'], message: string, first?: CommandRefused['first']): void {
    this.log.warn({ frameId: f.id, commandId, reason }, `relay command frame refused (${reason}): ${message}`);
    this.deps.link.sendUnreliable(
      frame({
        type: 'command.refused' as const,
        frameId: f.id,
        ...(commandId ? { commandId: commandId.slice(0, 100) } : {}),
        reason,
        message: message.slice(0, 500),
        ...(first ? { first } : {}),
      }),
    );
  }

  private ack(id: string): void {
    this.deps.link.sendUnreliable(frame({ type: 'ack' as const, ackId: id }));
  }
}
