import { retryRefundKey } from '../refunds.js';
import type { JobLocks } from '../fleet/job-lock.js';
import type { Logger } from '../../runtime/log.js';
import type { RelayConfig } from '../config.js';
import { activeFaults, type FleetStatus } from '../fleet-status.js';
import type { RelayStore } from '../store/index.js';
import type { AlertFacts, KioskFacts } from './alert-rules.js';
import { AlertManager } from './alerts.js';
import { openChannel, type Channel } from './channels.js';
import { DeliveryWorker } from './deliveries.js';

// The relay's outbound side, put together: the channels of relay.yaml `notify`, the delivery
// worker that drains the deliveries table into them, and the alert manager that checks the fleet
// every `alerts.checkEverySeconds`. With several instances each check and each delivery pass
// runs on one instance at a time (job locks); the open-alert key makes a fire once-only anyway.

export interface RelayNotifyDeps {
  config: Pick<RelayConfig, 'notify' | 'alerts'>;
  store: RelayStore;
  logger: Logger;
  now: () => number;
  jobs: JobLocks;
  /** connected to this or another live instance */
  kioskOnline(kioskId: string): boolean;
  /** kiosk snapshots (faults, service mode) and connect/disconnect times */
  fleetView: FleetStatus;
}

const DAY = 86_400_000;

export class RelayNotify {
  readonly channels: readonly Channel[];
  readonly worker: DeliveryWorker;
  readonly alerts: AlertManager;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly d: RelayNotifyDeps) {
    this.channels = d.config.notify.channels.map(openChannel);
    this.worker = new DeliveryWorker({
      store: d.store,
      channels: this.channels,
      logger: d.logger.child({ part: 'deliveries' }),
      now: d.now,
      maxAttempts: d.config.notify.maxAttempts,
      exclusive: (job, fn) => d.jobs.run(job, fn),
    });
    const { checkEverySeconds: _every, ...rules } = d.config.alerts;
    this.alerts = new AlertManager({
      store: d.store,
      channels: this.channels,
      rules,
      facts: () => this.facts(),
      logger: d.logger.child({ part: 'alerts' }),
      now: d.now,
      onDeliveries: () => this.worker.kick(),
    });
  }

  start(): void {
    this.worker.kick(); // whatever a previous run left pending
    this.timer = setInterval(() => void this.check(), this.d.config.alerts.checkEverySeconds * 1000);
    this.timer.unref();
  }

  /** One alert check (one instance at a time); resolves what it fired and cleared. */
  async check(): Promise<{ fired: number; cleared: number }> {
    try {
      const r = await this.d.jobs.run('alerts', () => this.alerts.check());
      return r.ran ? r.value : { fired: 0, cleared: 0 };
    } catch (err) {
      this.d.logger.error({ err }, `alert check failed: ${(err as Error).message}`);
      return { fired: 0, cleared: 0 };
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker.close();
  }

  /** What the alert rules look at, from the store and the kiosks' own reports. */
  async facts(): Promise<AlertFacts> {
    const now = this.d.now();
    const views = new Map((await this.d.fleetView.kiosks()).map((v) => [v.kioskId, v]));
    const kiosks: KioskFacts[] = [];
    for (const k of await this.d.store.listKiosks()) {
      const v = views.get(k.id);
      const online = this.d.kioskOnline(k.id);
      const presence = await this.d.store.presenceOf(k.id);
      const recent = await this.d.store.recentOrders({ kioskId: k.id, limit: this.d.config.alerts.vendFailuresInRow * 3 + 5 });
      const vends = recent.flatMap((o): Array<'dispensed' | 'failed'> =>
        o.state === 'vended' ? ['dispensed'] : (o.state === 'refunding' || o.state === 'refunded') && o.vendResult !== null && o.vendResult !== 'dispensed' ? ['failed'] : [],
      );
      // the hours it sold in (one time per UTC hour, counted by the database) and its last sale:
      // loading every order of 14 days held a busy relay's whole history in memory at each check
      const sold = await this.d.store.saleHoursOf(k.id, now - 14 * DAY);
      kiosks.push({
        kioskId: k.id,
        online,
        // the last connect or disconnect this relay knows of; a kiosk never connected is new, not offline
        lastSeenAt: online ? now : (v?.since ?? presence?.seenAt ?? null),
        inService: (v?.status?.service ?? null) === null,
        faults: activeFaults(v?.status ?? null),
        recentVends: vends,
        salesTimes: sold.lastSaleAt !== null && sold.lastSaleAt > now - 14 * DAY ? [...sold.hours, sold.lastSaleAt] : sold.hours,
      });
    }
    const failingRefunds: AlertFacts['failingRefunds'] = [];
    for (const r of await this.d.store.failingRefunds(3)) {
      // a refused refund an operator retried is the retry's to alert on (relay/console/actions.ts retryRefund)
      if (await this.d.store.getRefundByKey(retryRefundKey(r))) continue;
      const kioskId = (await this.d.store.getOrder(r.orderId))?.kioskId ?? '';
      failingRefunds.push({ refundKey: r.idempotencyKey, orderId: r.orderId, kioskId, error: r.lastError ?? r.status, gaveUp: r.status === 'failed' });
    }
    return { kiosks, failingRefunds };
  }
}
