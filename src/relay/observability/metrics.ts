import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ORDER_STATES } from '../../core/relay-order.js';
import { mpEndpointTemplate, type MpCallReport } from '../../mercadopago/endpoints.js';
import type { RelayStore } from '../store/index.js';
import type { DependencyTracker } from './dependency.js';
import type { RefundOutcome, RelayObserver } from './observer.js';
import { outboxDepth } from './store-probe.js';

// The relay's Prometheus metrics. One Registry per relay (never prom-client's global one): tests
// run several relays in one process, and each must report only its own. Every series carries
// `relay_instance` (observability.instance) so instances behind one load balancer can be told
// apart and summed.
//
// Values read from the store (orders by state, outbox depth) are collected when scraped, with
// awaited calls, so they work the same on the synchronous SQLite store and the async one. With
// several instances on one database those two are the same for every instance: aggregate them
// with max(), not sum().

const SECONDS_FAST = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const SECONDS_VEND = [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300];
const SECONDS_MP = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface RelayMetricsOptions {
  instance: string;
  store: () => RelayStore;
  kiosksConnected: () => number;
  health: { store: DependencyTracker; mercadopago: DependencyTracker };
}

export class RelayMetrics implements RelayObserver {
  readonly registry = new Registry();
  private readonly notificationLag: Histogram<never>;
  private readonly paymentToVend: Histogram<'result'>;
  private readonly refunds: Counter<'outcome'>;
  private readonly mpLatency: Histogram<'endpoint' | 'status'>;
  private readonly mpErrors: Counter<'endpoint' | 'kind'>;

  constructor(o: RelayMetricsOptions) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ relay_instance: o.instance });
    collectDefaultMetrics({ register: this.registry, prefix: 'qrkiosk_relay_' });

    new Gauge({
      name: 'qrkiosk_kiosks_connected',
      help: 'Kiosks with an open, authenticated WebSocket that said hello, on this instance',
      registers,
      collect() {
        this.set(o.kiosksConnected());
      },
    });
    new Gauge({
      name: 'qrkiosk_orders',
      help: 'Orders in the store by state (the whole database: the same on every instance)',
      labelNames: ['state'],
      registers,
      async collect() {
        const store = o.store();
        // Counted one state at a time so each is one indexed count, and a state with no orders
        // still reports 0 (an absent series cannot be alerted on).
        for (const state of ORDER_STATES) this.set({ state }, await store.countOrders(state));
      },
    });
    new Gauge({
      name: 'qrkiosk_outbox_depth',
      help: 'Reliable frames written for kiosks and not yet acknowledged by them (the whole database)',
      registers,
      async collect() {
        this.set(await outboxDepth(o.store()));
      },
    });
    new Gauge({
      name: 'qrkiosk_dependency_up',
      help: '1 when the dependency answered its latest call or ping, 0 while every attempt fails',
      labelNames: ['dependency'],
      registers,
      collect() {
        for (const [name, t] of Object.entries(o.health)) this.set({ dependency: name }, t.failing ? 0 : 1);
      },
    });
    new Gauge({
      name: 'qrkiosk_dependency_last_success_age_seconds',
      help: 'Seconds since the dependency last answered (absent until it has answered once)',
      labelNames: ['dependency'],
      registers,
      collect() {
        this.reset();
        for (const [name, t] of Object.entries(o.health)) {
          const age = t.snapshot().lastSuccessAgeSeconds;
          if (age !== null) this.set({ dependency: name }, age);
        }
      },
    });
    this.notificationLag = new Histogram({
      name: 'qrkiosk_notification_lag_seconds',
      help: 'From a stored Mercado Pago notification handed to the worker to its processing done (API reads included)',
      buckets: SECONDS_FAST,
      registers,
    });
    this.paymentToVend = new Histogram({
      name: 'qrkiosk_payment_to_vend_seconds',
      help: "From the order's payment verified (paid) to the kiosk's vend result",
      labelNames: ['result'],
      buckets: SECONDS_VEND,
      registers,
    });
    this.refunds = new Counter({
      name: 'qrkiosk_refunds_total',
      help: 'Refund attempts of one payment, by outcome (refunded, refused, retry, external)',
      labelNames: ['outcome'],
      registers,
    });
    this.mpLatency = new Histogram({
      name: 'qrkiosk_mercadopago_request_seconds',
      help: 'Mercado Pago API request time per HTTP attempt, by endpoint template and status class',
      labelNames: ['endpoint', 'status'],
      buckets: SECONDS_MP,
      registers,
    });
    this.mpErrors = new Counter({
      name: 'qrkiosk_mercadopago_errors_total',
      help: 'Mercado Pago API attempts that failed: timeout, network, http_429, http_4xx, http_5xx',
      labelNames: ['endpoint', 'kind'],
      registers,
    });
    // Series that exist before their first event, so rate() and alerts see a 0 instead of nothing.
    for (const outcome of ['refunded', 'refused', 'retry', 'external'] satisfies RefundOutcome[]) this.refunds.inc({ outcome }, 0);
  }

  notificationProcessed(seconds: number): void {
    this.notificationLag.observe(seconds);
  }

  vendReported(result: 'vended' | 'vend_failed', seconds: number): void {
    this.paymentToVend.observe({ result }, Math.max(0, seconds));
  }

  refundAttempted(outcome: RefundOutcome): void {
    this.refunds.inc({ outcome });
  }

  /** One HTTP attempt at Mercado Pago (MercadoPagoClient's onCall). */
  mpCall(call: MpCallReport): void {
    const endpoint = mpEndpointTemplate(call.method, call.path);
    const status = call.status === undefined ? call.failure ?? 'network' : `${Math.floor(call.status / 100)}xx`;
    this.mpLatency.observe({ endpoint, status }, call.seconds);
    const kind = mpErrorKind(call);
    if (kind) this.mpErrors.inc({ endpoint, kind });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** null for an answer that is not an error (2xx, 3xx). A 404 is an error of the call, not of MP's reachability. */
export function mpErrorKind(call: MpCallReport): string | null {
  if (call.status === undefined) return call.failure ?? 'network';
  if (call.status === 429) return 'http_429';
  if (call.status >= 500) return 'http_5xx';
  if (call.status >= 400) return 'http_4xx';
  return null;
}
