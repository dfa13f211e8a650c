import { EventEmitter } from 'node:events';
import type { KioskStatus, StockRefill } from '../protocol/messages.js';
import type { Logger } from '../runtime/log.js';
import type { FleetRecorder, Presence, RefillRecord, StatusBody } from './fleet-recorder.js';

// What the operator's console shows of each kiosk (docs/console-kiosk.md): online or not and since
// when, and the kiosk's last status snapshot (screen, stock per slot, hardware faults, agent
// version, payment model), plus the refills technicians made. Snapshots replace each other;
// refills are facts, kept once each.

export interface FleetKioskView {
  kioskId: string;
  online: boolean;
  /** relay clock of the last connect/disconnect; null: not seen since this relay started keeping it */
  since: number | null;
  /** the last snapshot; null before the kiosk sent one */
  status: StatusBody | null;
  /** relay clock */
  statusReceivedAt: number | null;
  lastRefill: RefillRecord | null;
}

/**
 * A kiosk's active hardware faults as the alert rules take them (relay/console/alert-rules.ts,
 * KioskFacts.faults): one code per device and kind, so a condition alerts once until it clears.
 */
export function activeFaults(status: StatusBody | null): Array<{ code: string; message: string; since: number }> {
  return (status?.faults.active ?? []).map((f) => ({ code: `${f.device}/${f.kind}`, message: `${f.device}: ${f.message}`, since: f.at }));
}

export interface FleetStatusDeps {
  recorder: FleetRecorder;
  isOnline(kioskId: string): boolean;
  logger: Logger;
  now: () => number;
}

export interface FleetStatusEvents {
  /** a kiosk's snapshot or presence changed */
  kiosk: [kioskId: string];
  refill: [refill: RefillRecord];
}

export class FleetStatus extends EventEmitter<FleetStatusEvents> {
  private readonly log: Logger;

  constructor(private readonly deps: FleetStatusDeps) {
    super();
    this.log = deps.logger.child({ part: 'fleet' });
  }

  async onStatus(kioskId: string, msg: KioskStatus): Promise<void> {
    const { v: _v, id: _id, type: _type, ...status } = msg;
    await this.deps.recorder.saveStatus({ kioskId, status, receivedAt: this.deps.now() });
    this.emit('kiosk', kioskId);
  }

  /** Keeps the refill once (a re-sent frame is recognised by its refillId). Returns whether it was new. */
  async onRefill(kioskId: string, msg: StockRefill): Promise<boolean> {
    const rec: RefillRecord = { refillId: msg.refillId, kioskId, at: msg.at, by: msg.by, slots: msg.slots, receivedAt: this.deps.now() };
    const added = await this.deps.recorder.recordRefill(rec);
    if (added) {
      this.log.info({ kioskId, refillId: msg.refillId, by: msg.by, slots: msg.slots.length }, `kiosk ${kioskId} refilled by ${msg.by}: ${msg.slots.map((s) => `slot ${s.slot} ${s.before} -> ${s.after}`).join(', ')}`);
      this.emit('refill', rec);
    } else {
      this.log.debug({ kioskId, refillId: msg.refillId }, `duplicate stock.refill ${msg.refillId} from kiosk ${kioskId}: acked again, kept once`);
    }
    return added;
  }

  async onPresence(kioskId: string, online: boolean): Promise<void> {
    const p: Presence = { kioskId, online, since: this.deps.now() };
    await this.deps.recorder.setPresence(p);
    this.emit('kiosk', kioskId);
  }

  /** Every kiosk the relay has heard of, by id. */
  async kiosks(): Promise<FleetKioskView[]> {
    const [statuses, presences, refills] = await Promise.all([this.deps.recorder.statuses(), this.deps.recorder.presences(), this.deps.recorder.refills(undefined, 1000)]);
    const ids = new Set([...statuses.map((s) => s.kioskId), ...presences.map((p) => p.kioskId)]);
    return [...ids].sort().map((kioskId) => {
      const s = statuses.find((x) => x.kioskId === kioskId);
      const p = presences.find((x) => x.kioskId === kioskId);
      return {
        kioskId,
        online: this.deps.isOnline(kioskId),
        since: p?.since ?? null,
        status: s?.status ?? null,
        statusReceivedAt: s?.receivedAt ?? null,
        lastRefill: refills.find((r) => r.kioskId === kioskId) ?? null,
      };
    });
  }

  async kiosk(kioskId: string): Promise<FleetKioskView | undefined> {
    return (await this.kiosks()).find((k) => k.kioskId === kioskId);
  }

  refills(kioskId?: string, limit?: number): Promise<RefillRecord[]> {
    return this.deps.recorder.refills(kioskId, limit);
  }
}
