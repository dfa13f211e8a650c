import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

// Every schema in qrkiosk is written with zod's functional build, zod/mini (`z.optional(x)`,
// `x.check(z.minLength(1))`), not the method-chain build (`x.min(1).optional()`): the same parser
// core, but importable piece by piece. The method-chain build puts every method on every schema and
// loads all of zod (every locale, the JSON Schema generator) on import; in the Pi's idle agent that
// was about 4 MB of resident memory (bench/README.md, "Round 6"). Modules import
// `* as z from 'zod/mini'` themselves (a namespace re-exported from here would make the bundler
// keep all of zod) and import this module for its English messages and its two helpers.
//
// Messages stay English, as with the method-chain build (which sets this on import): zod/mini
// alone answers "Invalid input" to every mistake a schema does not word itself.
z.config(en());

/** What a transform step may do besides returning the value: report a problem with the input. */
export interface IssueContext {
  addIssue(issue: { code: 'custom'; message: string; path?: PropertyKey[]; input?: unknown }): void;
}

/**
 * zod/mini's transform with the context the method-chain build gives its transforms: `addIssue`
 * (return `z.NEVER` after one). A pipe does not go on past a step that added an issue.
 */
export function transform<In, Out>(fn: (input: In, ctx: IssueContext) => Out) {
  return z.transform((input: In, payload) => fn(input, { addIssue: (issue) => payload.issues.push({ input, ...issue }) }));
}

/** zod/mini has no `preprocess`: the method-chain build's, a transform in front of the schema. */
export function preprocess<In, Out extends z.core.$ZodType>(fn: (input: In, ctx: IssueContext) => unknown, schema: Out) {
  return z.pipe(transform(fn), schema);
}
