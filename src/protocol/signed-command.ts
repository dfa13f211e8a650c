import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import * as z from 'zod/mini';
import '../runtime/zod.js';
import { CURRENCY_CODES } from '../core/money.js';
import { CatalogEntry, MAX_SLOT, type CommandFrame, type CommandRejection } from './messages.js';

// Operator commands the relay sends a kiosk, signed with the relay's Ed25519 key. The kiosk knows
// the relay's PUBLIC key from its own agent.yaml (relay.commandKey, written at provisioning), never
// from the link: a forged or tampered frame, even over an authenticated socket, is refused.
//
// What is signed: the context line below followed by the exact bytes of `payload` (the command body
// as JSON text). The kiosk verifies those bytes, then parses them; nothing is re-serialised, so no
// canonical JSON is needed. The body names its kiosk (a command for kiosk A is refused by kiosk B),
// its own id (refused a second time: replay) and its expiry (refused after it).

export const COMMAND_SIGNATURE_CONTEXT = 'qrkiosk-command-v1\n';

/** How far ahead of the kiosk's clock a command's issue time may be (a relay clock a bit fast). */
export const COMMAND_CLOCK_SKEW_MS = 5 * 60_000;
/** Longest validity a command may carry: an old command is not an instruction any more. */
export const COMMAND_MAX_TTL_MS = 24 * 3_600_000;

const slot = z.number().check(z.int(), z.positive(), z.lte(MAX_SLOT));
const currency = z.enum(CURRENCY_CODES as [string, ...string[]]);

export const CommandAction = z.discriminatedUnion('kind', [
  /** in service: selling; out of service: the out-of-service screen, every button refused */
  z.object({ kind: z.literal('service'), inService: z.boolean() }),
  /** the counts the operator says the slots hold */
  z.object({
    kind: z.literal('stock.set'),
    slots: z.array(z.object({ slot, count: z.number().check(z.int(), z.nonnegative()) })).check(z.minLength(1), z.maxLength(MAX_SLOT)),
  }),
  /** one dispense on the real motor, nothing sold (like `qrkiosk test dispense`) */
  z.object({ kind: z.literal('test.vend'), slot }),
  /** one product's price, in minor units; the next order is priced with it */
  z.object({
    kind: z.literal('price.set'),
    sku: z.string().check(z.minLength(1), z.maxLength(60)),
    price: z.number().check(z.int(), z.positive()),
    currency,
  }),
  /** the kiosk's whole price list */
  z.object({ kind: z.literal('catalog.set'), entries: z.array(CatalogEntry).check(z.minLength(1), z.maxLength(300)) }),
]);
export type CommandAction = z.infer<typeof CommandAction>;
export type CommandKind = CommandAction['kind'];

export const CommandBody = z
  .object({
    commandId: z.string().check(z.regex(/^cmd_[A-Za-z0-9_-]{6,60}$/, 'command ids look like cmd_<letters/digits>')),
    kioskId: z.string().check(z.minLength(1), z.maxLength(64)),
    issuedAt: z.number().check(z.int(), z.nonnegative()),
    expiresAt: z.number().check(z.int(), z.nonnegative()),
    /** the operator who asked */
    issuedBy: z.string().check(z.minLength(1), z.maxLength(100)),
    reason: z.optional(z.string().check(z.maxLength(300))),
    action: CommandAction,
  })
  .check(
    z.refine((b) => b.expiresAt > b.issuedAt && b.expiresAt - b.issuedAt <= COMMAND_MAX_TTL_MS, {
      message: `expiresAt must be after issuedAt and at most ${COMMAND_MAX_TTL_MS / 3_600_000} h later`,
      path: ['expiresAt'],
    }),
  );
export type CommandBody = z.infer<typeof CommandBody>;

export interface SignedCommand {
  payload: string;
  signature: string;
  keyId: string;
}

// ---- keys ---------------------------------------------------------------------------------------

export function generateCommandKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

/** The one-line form written in agent.yaml: `ed25519:<43 base64url characters>`. */
export function publicKeyText(key: KeyObject): string {
  return `ed25519:${rawPublicKey(key).toString('base64url')}`;
}

/** A short name of a public key, to say which key signed and which one a kiosk trusts. */
export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 16);
}

export class CommandKeyError extends Error {
  override name = 'CommandKeyError';
}

/** Reads `ed25519:<base64url>`; throws CommandKeyError saying what to write instead. */
export function parsePublicKeyText(text: string): KeyObject {
  const m = /^ed25519:([A-Za-z0-9_-]{43})$/.exec(text.trim());
  if (!m) {
    throw new CommandKeyError('must look like ed25519:<43 letters/digits>: copy the line printed by `qrkiosk relay command-key --config relay.yaml`');
  }
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: m[1]! }, format: 'jwk' });
  } catch (err) {
    throw new CommandKeyError(`is not an Ed25519 public key (${(err as Error).message}): copy it again from \`qrkiosk relay command-key\``);
  }
}

// ---- sign / verify ------------------------------------------------------------------------------

function signedBytes(payload: string): Buffer {
  return Buffer.from(COMMAND_SIGNATURE_CONTEXT + payload, 'utf8');
}

/** Signs a command body (checked against the schema first: the relay never signs what a kiosk would refuse as malformed). */
export function signCommand(body: CommandBody, privateKey: KeyObject, publicKey: KeyObject): SignedCommand {
  const payload = JSON.stringify(CommandBody.parse(body));
  return { payload, signature: sign(null, signedBytes(payload), privateKey).toString('base64url'), keyId: keyIdOf(publicKey) };
}

export type VerifyResult =
  | { ok: true; body: CommandBody }
  | { ok: false; reason: Extract<CommandRejection, 'unsigned' | 'bad_signature' | 'malformed'>; message: string; commandId?: string };

/** The command id as written in a payload, for naming a refused frame (never trusted for anything else). */
export function claimedId(payload: string): string | undefined {
  try {
    const id = (JSON.parse(payload) as { commandId?: unknown }).commandId;
    return typeof id === 'string' ? id.slice(0, 100) : undefined;
  } catch {
    return undefined;
  }
}

/** Checks the signature over the payload bytes with the trusted key, then parses the body. */
export function verifyCommand(f: Pick<CommandFrame, 'payload' | 'signature' | 'keyId'>, trusted: KeyObject): VerifyResult {
  const id = claimedId(f.payload);
  const named = id ? { commandId: id } : {};
  if (!f.signature) return { ok: false, reason: 'unsigned', message: 'the command carries no signature: refused', ...named };
  const sig = Buffer.from(f.signature, 'base64url');
  let good = false;
  try {
    good = sig.length === 64 && verify(null, signedBytes(f.payload), trusted, sig);
  } catch {
    good = false;
  }
  if (!good) {
    const ours = keyIdOf(trusted);
    const why =
      f.keyId && f.keyId !== ours
        ? `signed with key ${f.keyId}, this kiosk trusts key ${ours} (relay.commandKey in agent.yaml): if the relay's key changed, write the new one there`
        : 'the signature does not match the command (forged or altered on the way)';
    return { ok: false, reason: 'bad_signature', message: `refused: ${why}`, ...named };
  }
  let data: unknown;
  try {
    data = JSON.parse(f.payload);
  } catch {
    return { ok: false, reason: 'malformed', message: 'signed payload is not JSON', ...named };
  }
  const parsed = CommandBody.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
      .join('; ');
    return { ok: false, reason: 'malformed', message: `signed command this kiosk cannot read (${issues}): update the agent`, ...named };
  }
  return { ok: true, body: parsed.data };
}

/** Words for a command in logs and the console. */
export function describeAction(a: CommandAction): string {
  switch (a.kind) {
    case 'service':
      return a.inService ? 'put in service' : 'take out of service';
    case 'stock.set':
      return `set stock ${a.slots.map((s) => `slot ${s.slot}=${s.count}`).join(', ')}`;
    case 'test.vend':
      return `test vend on slot ${a.slot}`;
    case 'price.set':
      return `price of ${a.sku} to ${a.price} ${a.currency} (minor units)`;
    case 'catalog.set':
      return `catalog of ${a.entries.length} products`;
  }
}
