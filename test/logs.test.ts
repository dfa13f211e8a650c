import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prettyLogLine } from '../src/cli/field-commands.js';
import { waitFor } from './helpers/wait.js';

// `qrkiosk logs`: the agent's pino JSON lines as text, filtered by order, followed as they come.

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const line = (o: Record<string, unknown>) => JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 2, 3, 4, 5, 6), pid: 1, hostname: 'pi', name: 'agent', ...o });

describe('qrkiosk logs', () => {
  it('prints a pino line as time, level, message and the other fields', () => {
    expect(prettyLogLine(line({ level: 40, msg: 'order paid', orderId: 'ord_abc123', part: 'session' }))).toBe(
      '2026-01-02 03:04:05.006 WARN  order paid  orderId=ord_abc123 part=session',
    );
    expect(prettyLogLine(line({ msg: 'other', orderId: 'ord_zzz999' }), 'ord_abc123')).toBeUndefined();
    expect(prettyLogLine('Error: not json at all')).toBe('Error: not json at all');
  });

  it('--file --order --follow prints the matching lines, then new ones as they are written', async () => {
    const file = join(dir, 'agent.log');
    writeFileSync(file, [line({ msg: 'order awaiting payment', orderId: 'ord_abc123' }), line({ msg: 'order awaiting payment', orderId: 'ord_other1' })].join('\n') + '\n');
    const child = spawn(process.execPath, [BIN, 'logs', '--file', file, '--order', 'ord_abc123', '--follow']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the existing line', () => out.includes('order awaiting payment  orderId=ord_abc123'));
      appendFileSync(file, line({ level: 50, msg: 'vend failed', orderId: 'ord_abc123' }) + '\n' + line({ msg: 'x', orderId: 'ord_other1' }) + '\n');
      await waitFor('the appended line', () => out.includes('ERROR vend failed'));
      expect(out).not.toContain('ord_other1');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
