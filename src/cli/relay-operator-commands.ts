import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { isRole, ROLES } from '../core/console-roles.js';
import { ActionError, ConsoleActions } from '../relay/console/actions.js';
import { hashPassword, passwordProblem } from '../relay/console/passwords.js';
import { loadRelayConfig } from '../relay/config.js';
import { openRelayStore, type RelayStore } from '../relay/store/index.js';
import { createLogger } from '../runtime/log.js';

// `qrkiosk relay operator add|list|disable|enable` (console accounts) and `qrkiosk relay review
// clear` (an operator action that needs no running relay). The password of `operator add` is read
// from stdin when it is not a terminal (scripts: `printf %s "$PW" | qrkiosk relay operator add ...`),
// else asked for twice without echo; it is never an argument (it would sit in shell history and ps).

export const OPERATOR_USAGE = `usage:
  qrkiosk relay operator add <email> --role viewer|operator|admin --config FILE   (password from stdin or asked)
  qrkiosk relay operator list --config FILE [--json]
  qrkiosk relay operator disable <email> --config FILE
  qrkiosk relay operator enable <email> --config FILE
  qrkiosk relay review clear <orderId> --decision TEXT --reason TEXT --config FILE`;

interface Io {
  out(line: string): void;
  err(line: string): void;
}

async function withStore<T>(configPath: unknown, fn: (store: RelayStore) => Promise<T>): Promise<T> {
  if (typeof configPath !== 'string' || !configPath) throw new Error('--config FILE is required (the relay YAML)');
  const store = await openRelayStore(loadRelayConfig(configPath).store);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function askHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    let text = '';
    stdin.setRawMode(true);
    stdin.resume();
    const onData = (b: Buffer) => {
      for (const ch of b.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stderr.write('\n');
          return resolve(text);
        }
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          stdin.off('data', onData);
          return reject(new Error('cancelled'));
        }
        if (ch === '\u007f') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) return readStdin();
  const a = await askHidden('password: ');
  const b = await askHidden('again: ');
  if (a !== b) throw new Error('the two passwords differ: run the command again');
  return a;
}

export async function operatorCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string' }, role: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  const [verb, email] = positionals;
  if (verb === 'list') {
    const ops = await withStore(values.config, (s) => s.listOperators());
    if (values.json) io.out(JSON.stringify(ops.map(({ passwordHash: _p, ...o }) => o)));
    else for (const o of ops) io.out(`${o.email}\t${o.role}\t${new Date(o.createdAt).toISOString()}\t${o.disabledAt ? `disabled ${new Date(o.disabledAt).toISOString()}` : 'active'}`);
    return 0;
  }
  if (!email || !['add', 'disable', 'enable'].includes(verb ?? '')) throw new Error(OPERATOR_USAGE);
  if (verb === 'add') {
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new Error(`"${email}" is not an e-mail address: operators log in with their e-mail`);
    const role = values.role ?? '';
    if (!isRole(role)) throw new Error(`--role must be one of ${ROLES.join(', ')}`);
    const password = await readPassword();
    const problem = passwordProblem(password);
    if (problem) throw new Error(problem);
    const hash = await hashPassword(password);
    const op = await withStore(values.config, (s) => s.addOperator(email, role, hash, Date.now()));
    io.out(`operator ${op.email} added (${op.role}); log in at <publicUrl>/console/login`);
    return 0;
  }
  const ok = await withStore(values.config, (s) => s.setOperatorDisabled(email, verb === 'disable' ? Date.now() : null));
  if (!ok) throw new Error(`no operator ${email} (qrkiosk relay operator list)`);
  io.out(verb === 'disable' ? `operator ${email} disabled; their sessions ended` : `operator ${email} enabled`);
  return 0;
}

export async function reviewCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string' }, decision: { type: 'string' }, reason: { type: 'string' } }, allowPositionals: true, strict: true });
  const [verb, orderId] = positionals;
  if (verb !== 'clear' || !orderId) throw new Error(OPERATOR_USAGE);
  // the machine's administrator (root or the relay's user on SSH) acts as admin, named in the audit
  const name = `cli:${process.env.SUDO_USER || userInfo().username}`;
  await withStore(values.config, async (store) => {
    const actions = new ConsoleActions({
      store,
      orders: { operatorRefund: () => Promise.reject(new Error('refunds from the CLI need the running relay: use /console')) },
      commands: { issue: () => Promise.reject(new Error('kiosk commands from the CLI need the running relay: use /console')) },
      logger: createLogger('relay-cli'),
      now: Date.now,
      approvalAbove: null,
    });
    try {
      await actions.clearReview({ operatorId: null, name, role: 'admin' }, orderId, values.decision, values.reason);
    } catch (err) {
      if (err instanceof ActionError) throw new Error(err.message);
      throw err;
    }
  });
  io.out(`order ${orderId}: review cleared by ${name}`);
  return 0;
}
