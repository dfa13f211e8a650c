import { join } from 'node:path';
import { MercadoPagoClient } from '../mercadopago/client.js';
import { parseRelayConfig, type RelayConfig, type RelayConfigInput } from '../relay/config.js';
import { startRelay, type RunningRelay } from '../relay/server.js';
import { DEFAULT_MODE } from '../relay/models/modes.js';
import { provisionKiosk } from '../relay/provision.js';
import type { PaymentModelName } from '../protocol/messages.js';
import type { Logger } from '../runtime/log.js';
import { freeLoopbackPort } from '../runtime/net.js';
import { startSandbox, type Sandbox } from '../sandbox/index.js';
import type { Currency } from '../core/money.js';

// Mercado Pago emulator + relay + one provisioned kiosk on loopback: what an operator sets up by
// hand (README), done in one call for the demo, the benchmark and the end-to-end tests, so the
// three exercise the same wiring.

export interface LocalStackOptions {
  /** where the relay keeps its database (a SQLite file here unless storeUrl is given) */
  dir: string;
  /** run the relay on this PostgreSQL database (store.url) instead of a SQLite file in dir */
  storeUrl?: string;
  accessToken: string;
  collectorId: number;
  currency?: Currency;
  webhookSecret?: string;
  catalog: RelayConfigInput['catalog'];
  orders?: RelayConfigInput['orders'];
  limits?: RelayConfigInput['limits'];
  /** more relay.yaml sections (notify, alerts, ...), as written in the file */
  relayExtra?: Partial<RelayConfigInput>;
  kiosk: { id: string; posExternalId: string; generation?: 'v1' | 'v2'; storeExternalId: string; model?: PaymentModelName; modelMode?: string | null };
  /** how often the simulated app polls a POS url */
  pollIntervalMs?: number;
  pollGiveUpMs?: number;
  sandboxLogger: Logger;
  relayLogger: Logger;
}

export interface LocalStack {
  sandbox: Sandbox;
  relay: RunningRelay;
  relayConfig: RelayConfig;
  /** the kiosk's token (shown once by `kiosk add`) */
  token: string;
  /** the POS sticker's QR payload */
  posQr: string;
  close(): Promise<void>;
}

export async function startLocalStack(o: LocalStackOptions): Promise<LocalStack> {
  const sandbox = await startSandbox({
    accessToken: o.accessToken,
    collectorId: o.collectorId,
    currency: o.currency ?? 'ARS',
    ...(o.webhookSecret ? { webhookSecret: o.webhookSecret } : {}),
    ...(o.pollIntervalMs ? { pollIntervalMs: o.pollIntervalMs } : {}),
    ...(o.pollGiveUpMs ? { pollGiveUpMs: o.pollGiveUpMs } : {}),
    logger: o.sandboxLogger,
  });
  try {
    // The relay's public URL goes into the POS url and notification_url, so it must be known
    // before the relay listens: take a free port first.
    const port = await freeLoopbackPort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const relayConfig = parseRelayConfig({
      listen: { host: '127.0.0.1', port },
      publicUrl,
      store: o.storeUrl ? { url: o.storeUrl } : { path: join(o.dir, 'relay.sqlite') },
      mercadopago: {
        baseUrl: sandbox.url,
        accessToken: o.accessToken,
        collectorId: o.collectorId,
        ...(o.webhookSecret ? { webhookSecret: o.webhookSecret } : {}),
      },
      catalog: o.catalog,
      ...(o.orders ? { orders: o.orders } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
      ...(o.relayExtra ?? {}),
    });
    const relay = await startRelay(relayConfig, { logger: o.relayLogger });

    // Mercado Pago sends Orders API webhooks, and notifications of orders that name no url (an
    // offline QR), to the url set in the seller's panel: here, this relay's.
    await sandbox.configure({ ordersWebhookUrl: `${publicUrl}/mp/notifications`, panelNotificationUrl: `${publicUrl}/mp/notifications` });

    // `qrkiosk relay kiosk add` + `qrkiosk relay provision`
    const model = o.kiosk.model ?? 'unattended';
    const added = await relay.store.addKiosk({
      id: o.kiosk.id,
      posExternalId: o.kiosk.posExternalId,
      generation: o.kiosk.generation ?? 'v2',
      model,
      modelMode: o.kiosk.modelMode === undefined ? DEFAULT_MODE[model] : o.kiosk.modelMode,
    });
    const mp = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: o.accessToken });
    await provisionKiosk(mp, relayConfig, relay.store, added.kiosk, { storeExternalId: o.kiosk.storeExternalId, storeName: `${o.kiosk.id} store` });
    const posQr = (await relay.store.getKiosk(o.kiosk.id))!.posQr!;
    return {
      sandbox,
      relay,
      relayConfig,
      token: added.token,
      posQr,
      async close() {
        await relay.close();
        await sandbox.close();
      },
    };
  } catch (err) {
    await sandbox.close();
    throw err;
  }
}
