import * as z from 'zod/mini';
import '../runtime/zod.js';
import { AgentMessage, RelayMessage, PROTOCOL_VERSION, type ErrorFrame } from './messages.js';

// Parsing never throws: a peer that sends garbage gets an error frame back and a log line, and
// the connection (and the process) carries on.

export type ParseResult<T> = { ok: true; msg: T } | { ok: false; code: ErrorFrame['code']; message: string; refId?: string };

const KNOWN_AGENT = new Set<string>(AgentMessage.def.options.map((o) => o.shape.type.def.values[0]!));
const KNOWN_RELAY = new Set<string>(RelayMessage.def.options.map((o) => o.shape.type.def.values[0]!));

function parseWith<T>(schema: z.core.$ZodType<T>, known: Set<string>, raw: string): ParseResult<T> {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return { ok: false, code: 'malformed', message: `frame is not JSON (starts with ${JSON.stringify(raw.slice(0, 40))})` };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, code: 'malformed', message: 'frame must be a JSON object with type, id and v' };
  }
  const obj = data as Record<string, unknown>;
  const refId = typeof obj.id === 'string' ? obj.id : undefined;
  if (obj.v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      code: 'unsupported_version',
      message: `protocol version ${JSON.stringify(obj.v)} is not supported; this side speaks v${PROTOCOL_VERSION}`,
      ...(refId ? { refId } : {}),
    };
  }
  if (typeof obj.type !== 'string' || !known.has(obj.type)) {
    return {
      ok: false,
      code: 'unknown_type',
      message: `unknown message type ${JSON.stringify(obj.type)}`,
      ...(refId ? { refId } : {}),
    };
  }
  const parsed = z.safeParse(schema, data);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(frame)'}: ${i.message}`)
      .join('; ');
    return { ok: false, code: 'invalid', message: `${obj.type}: ${issues}`, ...(refId ? { refId } : {}) };
  }
  return { ok: true, msg: parsed.data };
}

/** Parse a frame the relay received from an agent. */
export function parseAgentFrame(raw: string): ParseResult<AgentMessage> {
  return parseWith(AgentMessage, KNOWN_AGENT, raw);
}

/** Parse a frame the agent received from the relay. */
export function parseRelayFrame(raw: string): ParseResult<RelayMessage> {
  return parseWith(RelayMessage, KNOWN_RELAY, raw);
}

export function newMessageId(prefix = 'm'): string {
  return `${prefix}_${globalThis.crypto.randomUUID()}`;
}

/** Build a frame: fills v and id so callers state only what the message says. */
export function frame<T extends { type: string }>(body: T, id = newMessageId()): T & { v: 1; id: string } {
  return { v: PROTOCOL_VERSION, id, ...body };
}

export function errorFrame(code: ErrorFrame['code'], message: string, refId?: string): ErrorFrame {
  return frame({ type: 'error' as const, code, message, ...(refId ? { refId } : {}) });
}
