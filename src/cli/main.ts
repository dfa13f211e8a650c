// The one `qrkiosk` command. Each sub-command lives in its own module, loaded only when used, so
// `qrkiosk status` on a Pi does not pay for loading the relay's HTTP server.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../runtime/package-root.js';

const USAGE = `qrkiosk — sell from kiosks and vending machines with Mercado Pago QR

Programs
  qrkiosk demo [--auto]                 sandbox + relay + agent with simulated hardware (npm start)
  qrkiosk agent --config FILE           run the kiosk agent (systemd starts this on the Pi)
  qrkiosk relay --config FILE           run the relay (the seller's server)
  qrkiosk relay kiosk add <id> --config FILE --pos <externalId> [--generation v1|v2]
  qrkiosk relay kiosk list --config FILE [--json]
  qrkiosk relay kiosk set-qr <id> <payload> --config FILE
  qrkiosk relay kiosk rotate-token <id> --config FILE
  qrkiosk relay orders --config FILE [--review] [--state S] [--kiosk ID] [--json]
  qrkiosk relay order <orderId> --config FILE [--json]   one order: history, payments, refunds
  qrkiosk relay provision <id> --config FILE --store <storeExternalId>
                                        create/fix the kiosk's POS at Mercado Pago, store its QR
  qrkiosk sandbox [--port N]            local Mercado Pago emulator with a simulated customer

Installing and updating (on the Pi or the server, from a release: npm run release)
  sudo qrkiosk install agent|relay [--profile NAME] [--dry-run] [--root DIR]
                                        user, /opt/qrkiosk, /etc/qrkiosk, units, udev rules, start
  qrkiosk config check FILE [--json]    every mistake in an agent or relay config, and the machine
  sudo qrkiosk update <tarball|version> switch to another release; back by itself if it does not come up

Technician commands (talk to the running agent; --socket PATH or --config FILE to find it)
  qrkiosk status [--json]               what the kiosk is doing now
  qrkiosk select <slot> [--json]        press a product button
  qrkiosk cancel [--json]               cancel the open order (before payment)
  qrkiosk journal [--limit N] [--json]  the latest vend steps
  qrkiosk hardware [--json]             profile, GPIO backend, pins and devices, hardware faults
  qrkiosk test buttons [--json]         live view of button presses until Ctrl-C (sales paused)
  qrkiosk test dispense <slot> [--json] pulse a slot's motor and watch the drop sensor
  qrkiosk test printer [--json]         print a sample receipt on the kiosk's receipt printer
  qrkiosk safe-outputs --config FILE    every motor output to its safe (off) level, agent stopped
  qrkiosk stock show|set <slot> <n>|refill [slot]   the counts per slot, corrected after loading
  qrkiosk service on|off                out of service for customers (an open vend finishes)
  qrkiosk resolve <order> dispensed|refund   settle a vend you checked by hand (sent to the relay)
  qrkiosk commands [--json]             the operator's signed commands this kiosk received, and what it did
  qrkiosk logs [--follow] [--order ID] [--file FILE]   the agent's log, readable
  qrkiosk test mdb-price <slot> [--json] choose the slot's item on an MDB machine: price vs catalog
  qrkiosk dex read [--json]             read the machine's audit over its DEX port, send it to the relay
  qrkiosk relay dex list|show|export --config FILE   machine audits beside qrkiosk's sales, CSV
  qrkiosk relay migrate --from sqlite:FILE --to postgres://…   move a stopped relay to PostgreSQL, verified

  qrkiosk --version | help`;

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo':
      return (await import('./demo.js')).demoMain(rest);
    case 'agent':
      return (await import('./agent-commands.js')).agentMain(rest);
    case 'relay':
      return (await import('./relay-commands.js')).relayMain(rest);
    case 'sandbox':
      return (await import('./sandbox-commands.js')).sandboxMain(rest);
    case 'status':
    case 'select':
    case 'cancel':
    case 'journal':
      return (await import('./agent-commands.js')).technicianMain(cmd, rest);
    case 'hardware':
      return (await import('./hardware-commands.js')).hardwareMain(rest);
    case 'stock':
    case 'service':
    case 'resolve':
    case 'commands':
    case 'logs':
      return (await import('./field-commands.js')).fieldMain(cmd, rest);
    case 'update':
      return (await import('./update-commands.js')).updateMain(rest);
    case 'config':
      return (await import('./config-commands.js')).configMain(rest);
    case 'install':
      return (await import('./install-commands.js')).installMain(rest);
    case 'test':
      return (await import('./hardware-commands.js')).testMain(rest);
    case 'safe-outputs':
      return (await import('./safe-outputs-command.js')).safeOutputsMain(rest);
    case 'dex':
      return (await import('./mdb-dex-commands.js')).dexMain(rest);
    case '--version':
    case '-v':
      console.log(version());
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`qrkiosk: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Long-running programs return only after they have shut down cleanly.
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`qrkiosk: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
