import {
  createHmac, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '../runtime/config-file.js';
import { generateCommandKeyPair, keyIdOf, publicKeyText, signCommand, type CommandBody, type SignedCommand } from '../protocol/signed-command.js';
import type { RelayConfig } from './config.js';

// The relay's command signing key: an Ed25519 private key in a PEM file only the relay's user can
// read (0600). Made on first start (or by `qrkiosk relay command-key`) when the file is missing;
// never replaced silently, because every kiosk trusts its public half (relay.commandKey in
// agent.yaml). A file others can read is refused: whoever reads it can command every kiosk.

export interface CommandSigner {
  /** short name of the public key (welcome.commandKeyId, refusal messages) */
  readonly keyId: string;
  /** the line for agent.yaml: relay.commandKey */
  readonly publicKeyText: string;
  sign(body: CommandBody): SignedCommand;
  /**
   * A secret for another purpose (e.g. the customers' receipt links), derived from the signing
   * key: every relay instance shares the key file, so they all derive the same secret, and no
   * second secret file has to be made, shared and backed up.
   */
  deriveSecret(label: string): string;
}

/** Where the key lives: commands.keyFile, else command-key.pem beside the store. */
export function commandKeyPath(config: Pick<RelayConfig, 'commands' | 'store'>): string {
  if (config.commands.keyFile) return config.commands.keyFile;
  // several instances on PostgreSQL must sign with ONE key (every kiosk trusts one public key):
  // there is no "beside the store" to default to, so the operator names the shared file
  if (!config.store.path) throw new Error('set commands.keyFile (the command signing key every relay instance shares) when the store is PostgreSQL (store.url)');
  return join(dirname(config.store.path), 'command-key.pem');
}

function signerFor(privateKey: KeyObject): CommandSigner {
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    publicKeyText: publicKeyText(publicKey),
    sign: (body) => signCommand(body, privateKey, publicKey),
    deriveSecret: (label) => createHmac('sha256', privateKey.export({ format: 'der', type: 'pkcs8' })).update(`qrkiosk ${label}`).digest('hex'),
  };
}

/** Reads the signing key, creating it (0600) when the file does not exist. */
export function loadOrCreateCommandKey(path: string): { signer: CommandSigner; created: boolean } {
  let pem: string;
  let created = false;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      throw new ConfigError(
        `${path}: the command signing key can be read by other users (mode ${(st.mode & 0o777).toString(8)}): run chmod 600 ${path} (whoever reads it can command every kiosk)`,
      );
    }
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${path}: cannot read the command signing key: ${(err as Error).message}`);
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const { privateKey } = generateCommandKeyPair();
    pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    // 'wx': two relays starting at once must not each write a different key
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateCommandKey(path);
      throw new ConfigError(`${path}: cannot create the command signing key: ${(e as Error).message}`);
    }
    try {
      writeSync(fd, pem);
    } finally {
      closeSync(fd);
    }
    created = true;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError(`${path} is not a PEM private key (${(err as Error).message}): restore it from the backup, or move it away to make a new one (then every kiosk needs the new relay.commandKey)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(`${path} holds a ${key.asymmetricKeyType ?? 'unknown'} key; commands are signed with Ed25519: move it away and start the relay to make one`);
  }
  return { signer: signerFor(key), created };
}
