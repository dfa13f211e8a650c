// A minimal entry for the agent alone (crash tests spawn it; a Pi image may run it directly):
//   node --import tsx src/cli/agent-entry.ts --config FILE            (same as `qrkiosk agent`)
//   node --import tsx src/cli/agent-entry.ts status|select|cancel|journal ...
// It avoids src/cli/main.ts so the agent process loads nothing of the relay or the sandbox.

import { agentMain, technicianMain } from './agent-commands.js';

async function run(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'agent') return agentMain(rest);
  if (first === 'status' || first === 'select' || first === 'cancel' || first === 'journal') return technicianMain(first, rest);
  return agentMain(argv);
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`qrkiosk agent: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
