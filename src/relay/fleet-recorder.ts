import { kioskCommand, type CommandEvent, type CommandState } from '../core/kiosk-command.js';
import type { CatalogEntry, CommandResult, KioskStatus, StockRefill, CommandRefused } from '../protocol/messages.js';
import type { CommandAction, CommandKind } from '../protocol/signed-command.js';
import type * as z from 'zod/mini';

// What the relay keeps of the kiosk side of the console: the kiosks' status snapshots, refills,
// and the operator commands with their lifecycle. An async interface so it can live in the relay
// store (SQLite or PostgreSQL, src/relay/store/) without the callers changing.
//
// The relay store implements it (RelayStore extends FleetStore: src/relay/store/sqlite/fleet-recorder.ts
// and postgres/fleet-recorder.ts, tables of migration 8), and the relay uses the store by default. Both keep:
// recordRefill idempotent per refillId, transitionCommand checked against core/kiosk-command.ts
// in the same transaction that appends the history row (test/store-fleet.test.ts, both stores).
// InMemoryFleetRecorder is kept for unit tests that need no database; it forgets everything.

export type StatusBody = Omit<KioskStatus, 'v' | 'id' | 'type'>;

export interface StoredStatus {
  kioskId: string;
  /** the kiosk's last snapshot (its `at` is the kiosk clock) */
  status: StatusBody;
  /** relay clock */
  receivedAt: number;
}

export interface Presence {
  kioskId: string;
  online: boolean;
  /** relay clock of the last connect or disconnect */
  since: number;
}

export interface RefillRecord {
  refillId: string;
  kioskId: string;
  /** kiosk clock */
  at: number;
  by: string;
  slots: StockRefill['slots'];
  receivedAt: number;
}

export interface CommandRefusalRecord {
  kioskId: string;
  frameId: string;
  commandId: string | null;
  reason: CommandRefused['reason'];
  message: string;
  /** whether this relay issued that command id (false: someone sent the kiosk a frame we did not sign) */
  ours: boolean;
  receivedAt: number;
}

export interface CommandHistoryRow {
  at: number;
  from: CommandState | null;
  to: CommandState;
  /** issue, a lifecycle event, or note (a kiosk answer that changed nothing) */
  event: CommandEvent | 'issue' | 'note';
  detail: string | null;
}

export interface CommandRecord {
  id: string;
  kioskId: string;
  kind: CommandKind;
  action: CommandAction;
  issuedBy: string;
  reason: string | null;
  issuedAt: number;
  expiresAt: number;
  state: CommandState;
  /** the signed frame as JSON text: re-sent unchanged until the kiosk has it */
  frame: string;
  /** relay clock: the kiosk's ack */
  deliveredAt: number | null;
  /** KIOSK clock: when the kiosk applied it (or refused it) */
  kioskAt: number | null;
  /** relay clock: when the kiosk's verdict arrived */
  answeredAt: number | null;
  refusal: { reason: string; message: string } | null;
  result: CommandResult['result'] | null;
  message: string | null;
  history: CommandHistoryRow[];
}

export type CommandPatch = Partial<Pick<CommandRecord, 'deliveredAt' | 'kioskAt' | 'answeredAt' | 'refusal' | 'result' | 'message'>>;

/**
 * The prices a kiosk confirmed applying (price.set, catalog.set), laid over the relay's catalog
 * for that kiosk: what its welcome carries and what its orders are priced at.
 */
export interface KioskPrices {
  /** a whole catalog of its own (catalog.set); null: the relay's catalog */
  catalog: Array<z.infer<typeof CatalogEntry>> | null;
  /** single prices changed since (price.set) */
  prices: Record<string, { price: number; currency: string }>;
  /** the command that made it so */
  commandId: string;
}

export interface FleetRecorder {
  saveStatus(s: StoredStatus): Promise<void>;
  statuses(): Promise<StoredStatus[]>;
  setPresence(p: Presence): Promise<void>;
  presences(): Promise<Presence[]>;
  /** Keeps a refill once: false when this refillId was recorded before (a re-sent frame). */
  recordRefill(r: RefillRecord): Promise<boolean>;
  /** newest first */
  refills(kioskId?: string, limit?: number): Promise<RefillRecord[]>;
  recordRefusal(r: CommandRefusalRecord): Promise<void>;
  /** newest first */
  refusals(kioskId?: string, limit?: number): Promise<CommandRefusalRecord[]>;

  insertCommand(c: CommandRecord): Promise<void>;
  getCommand(id: string): Promise<CommandRecord | undefined>;
  /**
   * Moves a command by the table of core/kiosk-command.ts and appends the history row, atomically.
   * Throws IllegalTransition (nothing changed) when the table has no such move.
   */
  transitionCommand(id: string, event: CommandEvent, at: number, patch?: CommandPatch, detail?: string): Promise<CommandRecord>;
  /** A history row that changes nothing (a replay the kiosk refused, a late second answer). */
  noteCommand(id: string, at: number, detail: string): Promise<void>;
  /** newest first */
  commandsOf(kioskId: string, limit?: number): Promise<CommandRecord[]>;
  /** oldest first */
  commandsIn(states: readonly CommandState[]): Promise<CommandRecord[]>;

  setKioskPrices(kioskId: string, p: KioskPrices): Promise<void>;
  kioskPrices(): Promise<Map<string, KioskPrices>>;
}

const clone = <T>(v: T): T => structuredClone(v);

/** FleetRecorder in process memory, for unit tests: lost at restart (the relay uses its store). */
export class InMemoryFleetRecorder implements FleetRecorder {
  private readonly status = new Map<string, StoredStatus>();
  private readonly presence = new Map<string, Presence>();
  private readonly refillList: RefillRecord[] = [];
  private readonly refillIds = new Set<string>();
  private readonly refusalList: CommandRefusalRecord[] = [];
  private readonly commands = new Map<string, CommandRecord>();
  private readonly prices = new Map<string, KioskPrices>();

  async saveStatus(s: StoredStatus): Promise<void> {
    this.status.set(s.kioskId, clone(s));
  }
  async statuses(): Promise<StoredStatus[]> {
    return [...this.status.values()].map(clone);
  }
  async setPresence(p: Presence): Promise<void> {
    this.presence.set(p.kioskId, { ...p });
  }
  async presences(): Promise<Presence[]> {
    return [...this.presence.values()].map((p) => ({ ...p }));
  }
  async recordRefill(r: RefillRecord): Promise<boolean> {
    if (this.refillIds.has(r.refillId)) return false;
    this.refillIds.add(r.refillId);
    this.refillList.push(clone(r));
    return true;
  }
  async refills(kioskId?: string, limit = 50): Promise<RefillRecord[]> {
    return this.refillList
      .filter((r) => kioskId === undefined || r.kioskId === kioskId)
      .reverse()
      .slice(0, limit)
      .map(clone);
  }
  async recordRefusal(r: CommandRefusalRecord): Promise<void> {
    this.refusalList.push({ ...r });
    // a flood of forged frames must not grow memory without bound
    if (this.refusalList.length > 1000) this.refusalList.splice(0, this.refusalList.length - 1000);
  }
  async refusals(kioskId?: string, limit = 50): Promise<CommandRefusalRecord[]> {
    return this.refusalList
      .filter((r) => kioskId === undefined || r.kioskId === kioskId)
      .reverse()
      .slice(0, limit)
      .map((r) => ({ ...r }));
  }

  async insertCommand(c: CommandRecord): Promise<void> {
    if (this.commands.has(c.id)) throw new Error(`command ${c.id} exists already`);
    this.commands.set(c.id, clone(c));
  }
  async getCommand(id: string): Promise<CommandRecord | undefined> {
    const c = this.commands.get(id);
    return c ? clone(c) : undefined;
  }
  async transitionCommand(id: string, event: CommandEvent, at: number, patch: CommandPatch = {}, detail?: string): Promise<CommandRecord> {
    const c = this.commands.get(id);
    if (!c) throw new Error(`command ${id} is not recorded`);
    const to = kioskCommand.next(c.state, event);
    Object.assign(c, patch);
    c.history.push({ at, from: c.state, to, event, detail: detail ?? null });
    c.state = to;
    return clone(c);
  }
  async noteCommand(id: string, at: number, detail: string): Promise<void> {
    const c = this.commands.get(id);
    if (!c) throw new Error(`command ${id} is not recorded`);
    c.history.push({ at, from: c.state, to: c.state, event: 'note', detail });
  }
  async commandsOf(kioskId: string, limit = 50): Promise<CommandRecord[]> {
    return [...this.commands.values()]
      .filter((c) => c.kioskId === kioskId)
      .reverse()
      .slice(0, limit)
      .map(clone);
  }
  async commandsIn(states: readonly CommandState[]): Promise<CommandRecord[]> {
    return [...this.commands.values()].filter((c) => states.includes(c.state)).map(clone);
  }

  async setKioskPrices(kioskId: string, p: KioskPrices): Promise<void> {
    this.prices.set(kioskId, clone(p));
  }
  async kioskPrices(): Promise<Map<string, KioskPrices>> {
    return new Map([...this.prices].map(([k, v]) => [k, clone(v)]));
  }
}
