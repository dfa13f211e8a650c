import { readFileSync } from 'node:fs';
import { parseDocument, LineCounter } from 'yaml';
import type { z } from 'zod';

// Configuration is YAML validated by a zod schema. An error names the file, the key path, the
// line, what was wrong and what to write instead, so a technician on SSH can fix it in one go.

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseConfigText<T>(text: string, schema: z.ZodType<T>, source: string): T {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new ConfigError(
      `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: YAML syntax error: ${e.message.split('\n')[0]} — check indentation and quoting on that line`,
    );
  }
  let data: unknown;
  try {
    // aliases are resolved here, not while parsing: an alias with no anchor (`*x`) or a "billion
    // laughs" document throws from toJS (found by the config fuzz suite)
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new ConfigError(`${source}: YAML error: ${(err as Error).message.split('\n')[0]} — YAML anchors (&x) and aliases (*x) are not needed in a qrkiosk config: write the value out`);
  }
  const parsed = schema.safeParse(data);
  if (parsed.success) return parsed.data;
  const msgs = parsed.error.issues.slice(0, 5).map((issue) => {
    const key = issue.path.map(String).join('.') || '(top level)';
    // a YAML key like `1:` in `pins: { 1: 17 }` is a number in the document but a string in the
    // path zod reports: try the numeric form too, so the message still has its line
    const path = issue.path as (string | number)[];
    const node = path.length
      ? (doc.getIn(path, true) ?? doc.getIn(path.map((k) => (typeof k === 'string' && /^\d+$/.test(k) ? Number(k) : k)), true))
      : undefined;
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    const where = range ? `:${lines.linePos(range[0]).line}` : '';
    return `${source}${where}: key "${key}": ${issue.message}`;
  });
  throw new ConfigError(msgs.join('\n'));
}

export function loadConfigFile<T>(path: string, schema: z.ZodType<T>): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message} — pass the right path with --config`);
  }
  return parseConfigText(text, schema, path);
}
