import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KioskSystem } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// The agent under systemd: READY=1 after recovery, WATCHDOG=1 while healthy, STOPPING=1 on
// SIGTERM, all through the real AF_UNIX datagram socket protocol (a python3 receiver stands in
// for PID 1, since Node cannot open datagram unix sockets).

const RECEIVER = `
import socket, sys, os
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print('bound', flush=True)
while True:
    data = s.recv(4096)
    print(data.decode().replace('\\n', '|'), flush=True)
`;

let sys: KioskSystem | undefined;
let receiver: ChildProcess | undefined;
afterEach(async () => {
  receiver?.kill('SIGKILL');
  await sys?.close();
  sys = undefined;
});

describe('systemd notify protocol', () => {
  it('announces readiness, pets the watchdog, says stopping', async () => {
    sys = await KioskSystem.start();
    const sockPath = join(sys.dir, 'notify.sock');
    const lines: string[] = [];
    receiver = spawn('python3', ['-u', '-c', RECEIVER, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    receiver.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor('receiver bound', () => lines.includes('bound'));

    await sys.startAgent({ NOTIFY_SOCKET: sockPath, WATCHDOG_USEC: '300000' });
    const ready = await waitFor('READY=1', () => lines.find((l) => l.startsWith('READY=1')));
    // ready once recovered: the relay may well be unreachable at boot, that is not a reason to wait
    expect(ready).toMatch(/^READY=1\|STATUS=idle; relay \w+; outbox 0$/);
    await waitFor('status shows the link up', () => lines.find((l) => l === 'STATUS=idle; relay online; outbox 0'));
    await waitFor('two watchdog pets', () => lines.filter((l) => l === 'WATCHDOG=1').length >= 2);

    await sys.stopAgent();
    expect((await sys.agentEnded()).code).toBe(0);
    await waitFor('STOPPING=1', () => lines.includes('STOPPING=1'));
  });

  it('is silent outside systemd', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent({});
    const s = await sys.status();
    expect(s.relay.online).toBe(true); // and nothing was spawned to talk to a socket that is not there
    expect(sys.agentOutput).not.toMatch(/sd_notify/);
  });
});
