import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { isScope, SCOPES } from '../core/console-roles.js';
import { loadRelayConfig } from '../relay/config.js';
import { newSecret } from '../relay/console/passwords.js';
import { openRelayStore } from '../relay/store/index.js';

// `qrkiosk relay apikey add|list|revoke`: the keys integrations use for /api/v1. The secret is
// shown once at `add`; the store keeps only its sha256. A running relay sees a new or revoked key
// at the next request (it reads the store each time).

const USAGE = `usage:
  qrkiosk relay apikey add <name> --scopes ${Object.keys(SCOPES).join(',')} --config FILE
  qrkiosk relay apikey list --config FILE [--json]
  qrkiosk relay apikey revoke <id|name> --config FILE`;

interface Io {
  out(line: string): void;
  err(line: string): void;
}

class ApiKeyUsage extends Error {}

export async function apikeyCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { config: { type: 'string' }, scopes: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ApiKeyUsage(`${(err as Error).message.split('\n')[0]}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (!sub || !['add', 'list', 'revoke'].includes(sub)) throw new ApiKeyUsage(USAGE);
  if (!values.config) throw new ApiKeyUsage(`--config FILE is required (the relay YAML)\n${USAGE}`);
  const config = loadRelayConfig(values.config);
  let scopes: string[] = [];
  if (sub === 'add') {
    if (positionals.length !== 1 || !/^[A-Za-z0-9 ._-]{1,60}$/.test(positionals[0]!)) throw new ApiKeyUsage(`name the integration (letters, digits, space . _ -, at most 60)\n${USAGE}`);
    scopes = (values.scopes ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const bad = scopes.filter((s) => !isScope(s));
    if (scopes.length === 0 || bad.length) throw new ApiKeyUsage(`--scopes must list one or more of ${Object.keys(SCOPES).join(', ')}${bad.length ? ` (not: ${bad.join(', ')})` : ''}`);
  } else if (sub === 'revoke' && positionals.length !== 1) throw new ApiKeyUsage(USAGE);
  const store = await openRelayStore(config.store);
  try {
    if (sub === 'add') {
      const { secret, hash } = newSecret('qrk');
      const id = `key_${randomBytes(6).toString('hex')}`;
      await store.insertApiKey({ id, name: positionals[0]!, scopes: [...new Set(scopes)], secretHash: hash, createdAt: Date.now() });
      io.out(`API key ${id} "${positionals[0]}" (scopes ${scopes.join(', ')}): ${secret}`);
      io.out('  WARNING: shown ONCE, only its hash is kept. Give it to the integration: Authorization: Bearer <key>');
      return 0;
    }
    if (sub === 'list') {
      const keys = await store.listApiKeys();
      if (values.json) io.out(JSON.stringify(keys.map(({ secretHash: _h, ...k }) => k), null, 2));
      else if (keys.length === 0) io.out('no API keys');
      else for (const k of keys) io.out(`${k.id}  ${k.name}  scopes ${k.scopes.join(',')}  created ${new Date(k.createdAt).toISOString()}${k.revokedAt ? `  REVOKED ${new Date(k.revokedAt).toISOString()}` : ''}`);
      return 0;
    }
    if (await store.revokeApiKey(positionals[0]!, Date.now())) {
      io.out(`API key ${positionals[0]} revoked: refused from the next request`);
      return 0;
    }
    io.err(`qrkiosk relay apikey revoke: no API key "${positionals[0]}" that is not revoked already (qrkiosk relay apikey list)`);
    return 2;
  } finally {
    await store.close();
  }
}
