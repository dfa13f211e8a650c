// What the per-model modules (instore-orders.ts, orders-api.ts) need from the sandbox core. The core
// implements it; the modules never import the core, so dependencies run one way.

import type { Logger } from 'pino';
import type { Currency } from '../core/money.js';
import type { MpItem } from '../mercadopago/types.js';
import type { OutgoingRequest } from './notify.js';
import type { Delivery, NotifyOptions, PosGeneration, QrModel } from './types.js';

export interface PosRef {
  id: number;
  externalId: string;
  storeId: number;
  externalStoreId?: string;
  url?: string;
  /** what the POS's QR shows: 59 and 60 */
  merchantName: string;
  merchantCity: string;
  /** 62/07 of the POS's QR */
  terminalLabel: string;
}

export type NormalizedNotify = Required<NotifyOptions>;

export interface MerchantOrderInput {
  model: Exclude<QrModel, 'orders'>;
  posId: number | null;
  generation: PosGeneration;
  externalReference: string;
  notificationUrl: string;
  items: MpItem[];
  totalMinor: number;
  sponsorId?: number;
  /** the legacy instore order this merchant order pays, if any */
  inStoreOrderId?: string;
}

export interface SandboxHost {
  readonly collectorId: number;
  readonly currency: Currency;
  readonly logger: Logger | undefined;
  readonly webhookSecret: string | undefined;
  findPosByExternalId(externalId: string): PosRef | undefined;
  findStoreByExternalId(externalId: string): { id: number } | undefined;
  /** opens a merchant order and returns its id */
  openMerchantOrder(input: MerchantOrderInput): number;
  normalizeNotify(opts: NotifyOptions): NormalizedNotify;
  /**
   * Sends one batch (delayMs and parallel from `opts`): one request per maker, each built at send
   * time so a late webhook carries a late ts.
   */
  startBatch(opts: NormalizedNotify, makers: ((batchId: number) => OutgoingRequest)[]): { batchId: number; deliveries: Promise<Delivery[]> };
}
