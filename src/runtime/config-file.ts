import { readFileSync } from 'node:fs';
import { parseDocument, LineCounter } from 'yaml';
import * as z from 'zod/mini';
import './zod.js';

// Configuration is YAML validated by a zod schema. An error names the file, the key path, the
// line, what was wrong and what to write instead, so a technician on SSH can fix it in one go.

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** One mistake in a config file: where it is, which key, and what to write instead. */
export interface ConfigProblem {
  line?: number;
  column?: number;
  /** dotted key path, "(top level)" for the document itself, "(yaml)" for a syntax error */
  key: string;
  message: string;
}

export type ConfigCheck<T> = { ok: true; data: T; problems: [] } | { ok: false; problems: ConfigProblem[] };

/**
 * Every problem of a config text at once: all YAML syntax errors, else every schema issue, each
 * with its line. (Fixing one mistake per run over SSH is how a five-minute visit takes an hour.)
 */
export function checkConfigText<T>(text: string, schema: z.core.$ZodType<T>): ConfigCheck<T> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return {
          ...(pos ? { line: pos.line, column: pos.col } : {}),
          key: '(yaml)',
          message: `YAML syntax error: ${e.message.split('\n')[0]} — check indentation and quoting on that line`,
        };
      }),
    };
  }
  let data: unknown;
  try {
    // aliases are resolved here, not while parsing: an alias with no anchor (`*x`) or a "billion
    // laughs" document throws from toJS (found by the config fuzz suite)
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    return {
      ok: false,
      problems: [
        {
          key: '(yaml)',
          message: `YAML error: ${(err as Error).message.split('\n')[0]} — YAML anchors (&x) and aliases (*x) are not needed in a qrkiosk config: write the value out`,
        },
      ],
    };
  }
  const parsed = z.safeParse(schema, data);
  if (parsed.success) return { ok: true, data: parsed.data, problems: [] };
  return {
    ok: false,
    problems: parsed.error.issues.map((issue) => {
      const key = issue.path.map(String).join('.') || '(top level)';
      // a YAML key like `1:` in `pins: { 1: 17 }` is a number in the document but a string in the
      // path zod reports: try the numeric form too, so the message still has its line
      const path = issue.path as (string | number)[];
      const node = path.length
        ? (doc.getIn(path, true) ??
          doc.getIn(
            path.map((k) => (typeof k === 'string' && /^\d+$/.test(k) ? Number(k) : k)),
            true,
          ))
        : undefined;
      // an unknown key has no node of its own under the path: point at the first unknown key
      let range = (node as { range?: [number, number, number] } | undefined)?.range;
      if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) {
        const pair = (doc.getIn(path, true) ?? doc.contents) as { items?: Array<{ key?: { value?: unknown; range?: [number, number, number] } }> } | null;
        range = pair?.items?.find((it) => String(it.key?.value) === issue.keys[0])?.key?.range ?? range;
      }
      const pos = range ? lines.linePos(range[0]) : undefined;
      return { ...(pos ? { line: pos.line, column: pos.col } : {}), key, message: issue.message };
    }),
  };
}

/** "file:line: key "a.b": message" */
export function formatProblem(source: string, p: ConfigProblem): string {
  const where = p.line !== undefined ? `:${p.line}` : '';
  return p.key === '(yaml)'
    ? `${source}${where}${p.column !== undefined ? `:${p.column}` : ''}: ${p.message}`
    : `${source}${where}: key "${p.key}": ${p.message}`;
}

export function parseConfigText<T>(text: string, schema: z.core.$ZodType<T>, source: string): T {
  const r = checkConfigText(text, schema);
  if (r.ok) return r.data;
  // a program that cannot start lists the first few; `qrkiosk config check` lists them all
  throw new ConfigError(
    r.problems
      .slice(0, 5)
      .map((p) => formatProblem(source, p))
      .join('\n'),
  );
}

export function loadConfigFile<T>(path: string, schema: z.core.$ZodType<T>): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message} — pass the right path with --config`);
  }
  return parseConfigText(text, schema, path);
}
