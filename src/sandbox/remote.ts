// Drives a sandbox running in another process (`qrkiosk sandbox`) through /_sandbox/*, with the same
// SandboxControl interface as the in-process one, so the demo code does not care where it runs.

import type { MpMerchantOrder, MpOrder, MpPayment, MpPos, MpStore } from '../mercadopago/types.js';
import type {
  Delivery,
  FaultInfo,
  FaultSpec,
  InstoreOrderInfo,
  NotifyOrderRequest,
  NotifyOrderResult,
  NotifyRawRequest,
  NotifyRequest,
  NotifyResult,
  PayOptions,
  PayResult,
  PollEntry,
  SandboxConfigPatch,
  RefundRecord,
  SandboxControl,
  ScanOptions,
  ScanResult,
} from './types.js';

export class SandboxRemoteError extends Error {
  override name = 'SandboxRemoteError';
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

export function connectSandbox(baseUrl: string, opts: { timeoutMs?: number } = {}): SandboxControl {
  const base = baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 60_000;

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(base + path, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new SandboxRemoteError(
        `could not reach the sandbox at ${base} (${(err as Error).message}); is \`qrkiosk sandbox\` running?`,
        0,
        undefined,
      );
    }
    const text = await res.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const d = (data ?? {}) as { error?: string; message?: string };
      throw new SandboxRemoteError(`sandbox ${method} ${path}: ${d.message ?? res.status}`, res.status, d.error);
    }
    return data as T;
  }

  /** Deliveries are waited for lazily by batch id; a failure resolves to [] rather than leaking a rejection. */
  function batch(id: number): Promise<Delivery[]> {
    if (!id) return Promise.resolve([]);
    return call<Delivery[]>('GET', `/_sandbox/batches/${id}`).catch(() => []);
  }

  const serializeFault = (spec: FaultSpec): Record<string, unknown> => ({
    ...spec,
    path: spec.path instanceof RegExp ? spec.path.source : spec.path,
  });

  return {
    scan: (o: ScanOptions) => call<ScanResult>('POST', '/_sandbox/scan', o),
    async pay(o: PayOptions): Promise<PayResult> {
      const r = await call<Omit<PayResult, 'deliveries'>>('POST', '/_sandbox/pay', o);
      return { ...r, deliveries: batch(r.batchId) } as PayResult;
    },
    async notify(o: NotifyRequest): Promise<NotifyResult> {
      const r = await call<Omit<NotifyResult, 'deliveries'>>('POST', '/_sandbox/notify', o);
      return { ...r, deliveries: batch(r.batchId) };
    },
    notifyRaw: (o: NotifyRawRequest) => call<Delivery>('POST', '/_sandbox/notify-raw', o),
    refunds: () => call<RefundRecord[]>('GET', '/_sandbox/refunds'),
    payments: () => call<MpPayment[]>('GET', '/_sandbox/payments'),
    merchantOrders: () => call<MpMerchantOrder[]>('GET', '/_sandbox/merchant-orders'),
    deliveries: () => call<Delivery[]>('GET', '/_sandbox/deliveries'),
    pollLog: () => call<PollEntry[]>('GET', '/_sandbox/poll-log'),
    pointsOfSale: () => call<MpPos[]>('GET', '/_sandbox/pos'),
    stores: () => call<MpStore[]>('GET', '/_sandbox/stores'),
    setFault: (spec: FaultSpec) => call<FaultInfo>('POST', '/_sandbox/faults', serializeFault(spec)),
    faults: () => call<FaultInfo[]>('GET', '/_sandbox/faults'),
    clearFaults: async () => {
      await call('DELETE', '/_sandbox/faults');
    },
    async notifyOrder(o: NotifyOrderRequest): Promise<NotifyOrderResult> {
      const r = await call<Omit<NotifyOrderResult, 'deliveries'>>('POST', '/_sandbox/notify-order', o);
      return { ...r, deliveries: batch(r.batchId) };
    },
    orders: () => call<MpOrder[]>('GET', '/_sandbox/orders'),
    instoreOrders: () => call<InstoreOrderInfo[]>('GET', '/_sandbox/instore-orders'),
    configure: async (patch: SandboxConfigPatch) => {
      await call('POST', '/_sandbox/config', patch);
    },
    expire: async (ref: { orderId?: string; inStoreOrderId?: string }) => {
      await call('POST', '/_sandbox/expire', ref);
    },
  };
}
