import nodemailer, { type Transporter } from 'nodemailer';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signWebhook } from './webhook-signature.js';

// Where the relay's outbound messages go: signed webhooks (alerts and order events, for the rest
// of the operator's business) and e-mail (alerts, for people). A channel answers one delivery
// attempt with ok, "try again later", or "this will never work" (a 4xx from the receiver, a
// refused recipient), so the delivery worker knows whether to back off or give up.

export interface QuietHours {
  /** local "HH:MM" when messages start being held */
  from: string;
  /** local "HH:MM" when held messages go out */
  to: string;
  timeZone: string;
}

export interface WebhookChannelConfig {
  name: string;
  events: string[];
  quietHours?: QuietHours;
  webhook: { url: string; secret: string; timeoutSeconds?: number };
}

export interface EmailChannelConfig {
  name: string;
  events: string[];
  quietHours?: QuietHours;
  email: {
    to: string[];
    from: string;
    smtp: { host: string; port: number; secure?: boolean; user?: string; password?: string; timeoutSeconds?: number; requireTls?: boolean };
  };
}

export type ChannelConfig = WebhookChannelConfig | EmailChannelConfig;

/** What one delivery carries: the event type and its JSON document. */
export interface OutboundMessage {
  deliveryId: string;
  event: string;
  /** the JSON body of a webhook; rendered to text for e-mail */
  payload: string;
}

export type SendResult = { ok: true; detail?: string } | { ok: false; permanent: boolean; error: string };

export interface Channel {
  readonly name: string;
  readonly kind: 'webhook' | 'email';
  readonly quietHours: QuietHours | undefined;
  /** whether this channel takes `event` (patterns like `alert.*`, `order.paid`, `*`) */
  wants(event: string): boolean;
  send(m: OutboundMessage, now: number): Promise<SendResult>;
  close(): void;
}

export function eventMatches(patterns: string[], event: string): boolean {
  return patterns.some((p) => p === '*' || p === event || (p.endsWith('.*') && event.startsWith(p.slice(0, -1))));
}

function minutesOf(hhmm: string): number {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(hhmm);
  if (!m) throw new Error(`"${hhmm}" is not a time of day: write HH:MM, e.g. 22:00`);
  return Number(m[1]) * 60 + Number(m[2]);
}

const minuteFormats = new Map<string, Intl.DateTimeFormat>();
function localMinutes(t: number, timeZone: string): number {
  let f = minuteFormats.get(timeZone);
  if (!f) minuteFormats.set(timeZone, (f = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })));
  const parts = f.formatToParts(new Date(t));
  return Number(parts.find((p) => p.type === 'hour')!.value) * 60 + Number(parts.find((p) => p.type === 'minute')!.value);
}

/**
 * If `t` falls in the quiet hours, when they end (to the minute); else undefined. Windows may wrap
 * midnight (22:00-07:00).
 */
export function quietUntil(q: QuietHours | undefined, t: number): number | undefined {
  if (!q) return undefined;
  const from = minutesOf(q.from);
  const to = minutesOf(q.to);
  if (from === to) return undefined;
  const now = localMinutes(t, q.timeZone);
  const inside = from < to ? now >= from && now < to : now >= from || now < to;
  if (!inside) return undefined;
  const left = (to - now + 1440) % 1440;
  // to the start of the minute `to`: strip the seconds already gone in this minute
  return t - (t % 60_000) + left * 60_000;
}

export function openChannel(c: ChannelConfig): Channel {
  return 'webhook' in c ? new WebhookChannel(c) : new EmailChannel(c);
}

class WebhookChannel implements Channel {
  readonly kind = 'webhook' as const;
  readonly name: string;
  readonly quietHours: QuietHours | undefined;
  constructor(private readonly c: WebhookChannelConfig) {
    this.name = c.name;
    this.quietHours = c.quietHours;
  }

  wants(event: string): boolean {
    return eventMatches(this.c.events, event);
  }

  async send(m: OutboundMessage, now: number): Promise<SendResult> {
    const signature = signWebhook(this.c.webhook.secret, m.payload, Math.floor(now / 1000));
    let res: Response;
    try {
      res = await fetch(this.c.webhook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signature, [DELIVERY_HEADER]: m.deliveryId, [EVENT_HEADER]: m.event, 'user-agent': 'qrkiosk-relay' },
        body: m.payload,
        // a receiver that redirects is misconfigured; following it would send the body elsewhere
        redirect: 'manual',
        signal: AbortSignal.timeout((this.c.webhook.timeoutSeconds ?? 10) * 1000),
      });
    } catch (err) {
      const e = err as Error;
      return { ok: false, permanent: false, error: e.name === 'TimeoutError' ? `no answer within ${this.c.webhook.timeoutSeconds ?? 10} s` : `could not reach ${this.c.webhook.url}: ${e.message}` };
    }
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return { ok: true, detail: `HTTP ${res.status}` };
    // 408 and 429 and 5xx say "later"; other 4xx say the receiver will never take this one
    const later = res.status === 408 || res.status === 429 || res.status >= 500 || (res.status >= 300 && res.status < 400);
    return { ok: false, permanent: !later, error: `the receiver answered HTTP ${res.status}` };
  }

  close(): void {}
}

class EmailChannel implements Channel {
  readonly kind = 'email' as const;
  readonly name: string;
  readonly quietHours: QuietHours | undefined;
  private readonly transport: Transporter;

  constructor(private readonly c: EmailChannelConfig) {
    this.name = c.name;
    this.quietHours = c.quietHours;
    const s = c.email.smtp;
    const timeout = (s.timeoutSeconds ?? 20) * 1000;
    this.transport = nodemailer.createTransport({
      host: s.host,
      port: s.port,
      secure: s.secure ?? s.port === 465,
      requireTLS: s.requireTls ?? false,
      ...(s.user ? { auth: { user: s.user, pass: s.password ?? '' } } : {}),
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
  }

  wants(event: string): boolean {
    return eventMatches(this.c.events, event);
  }

  async send(m: OutboundMessage): Promise<SendResult> {
    const { subject, text } = renderEmail(m);
    try {
      const info = await this.transport.sendMail({ from: this.c.email.from, to: this.c.email.to, subject, text, headers: { 'X-Qrkiosk-Delivery': m.deliveryId } });
      return { ok: true, detail: String(info.response ?? 'accepted') };
    } catch (err) {
      const e = err as Error & { responseCode?: number };
      // SMTP 5xx is a permanent refusal (bad recipient, policy); 4xx and network errors are "later"
      const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500;
      return { ok: false, permanent, error: `SMTP: ${e.message}` };
    }
  }

  close(): void {
    this.transport.close();
  }
}

/** An e-mail a person reads: the summary as subject, the facts as lines. */
export function renderEmail(m: OutboundMessage): { subject: string; text: string } {
  let doc: { type?: string; data?: Record<string, unknown> } = {};
  try {
    doc = JSON.parse(m.payload) as typeof doc;
  } catch {
    /* rendered raw below */
  }
  const data = doc.data ?? {};
  const summary = typeof data.summary === 'string' ? data.summary : m.event;
  const prefix = m.event === 'alert.cleared' ? '[qrkiosk] cleared: ' : m.event === 'alert.fired' ? '[qrkiosk] ALERT: ' : '[qrkiosk] ';
  const lines = Object.entries(data)
    .filter(([k]) => k !== 'summary')
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  return { subject: prefix + summary, text: `${summary}\n\n${lines.join('\n')}\n\ndelivery ${m.deliveryId}\n` };
}
