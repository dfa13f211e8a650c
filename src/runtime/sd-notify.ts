import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from './log.js';

// systemd's readiness and watchdog protocol (sd_notify) without a native addon.
//
// The notify socket is an AF_UNIX datagram socket, which Node cannot open. A short-lived
// `systemd-notify` per message races: if it exits before PID 1 reads the datagram, systemd cannot
// tell which unit sent it and drops it. So we keep ONE helper process alive for the agent's
// lifetime (python3, present on Raspberry Pi OS and Debian) that forwards each stdin line as one
// datagram. The unit needs NotifyAccess=all because the sender is a child of the main process.
//
// Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the same binary runs in a terminal.

const FORWARDER = `
import os, socket, sys
addr = os.environ['NOTIFY_SOCKET']
if addr.startswith('@'):
    addr = '\\0' + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for line in sys.stdin:
    msg = line.rstrip('\\n').replace('\\\\n', '\\n')
    if msg:
        try:
            s.sendto(msg.encode(), addr)
        except OSError as e:
            sys.stderr.write('sd_notify: %s\\n' % e)
            sys.stderr.flush()
`;

export interface HealthCheck {
  /** a short reason when unhealthy; undefined when all is well (a check that throws is unhealthy) */
  (): string | undefined | Promise<string | undefined>;
}

export class SystemdNotifier {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastStatus = '';

  constructor(
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get enabled(): boolean {
    return typeof this.env.NOTIFY_SOCKET === 'string' && this.env.NOTIFY_SOCKET.length > 0;
  }

  /** systemd's watchdog period in ms, or undefined when WatchdogSec= is not set for us. */
  get watchdogMs(): number | undefined {
    const usec = Number(this.env.WATCHDOG_USEC);
    const pid = this.env.WATCHDOG_PID;
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    if (pid && Number(pid) !== process.pid) return undefined;
    return Math.floor(usec / 1000);
  }

  private send(message: string): void {
    if (!this.enabled) return;
    if (!this.child) {
      this.child = spawn('python3', ['-u', '-c', FORWARDER], {
        env: { ...this.env },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      this.child.stderr?.on('data', (d: Buffer) => this.logger.warn({ err: d.toString().trim() }, 'sd_notify helper error'));
      this.child.on('error', (err) => this.logger.warn({ err: err.message }, 'sd_notify helper could not start (python3 missing?)'));
      this.child.on('exit', () => (this.child = undefined));
      this.child.stdin?.on('error', () => undefined);
    }
    this.child.stdin?.write(message.replace(/\n/g, '\\n') + '\n');
  }

  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${status}`);
  }

  status(status: string): void {
    if (status === this.lastStatus) return;
    this.lastStatus = status;
    this.send(`STATUS=${status}`);
  }

  /**
   * Pets the watchdog at half its period, but only while `healthy()` says the program really
   * works (journal writable, event loop turning). A wedged agent then gets restarted by systemd
   * instead of showing a frozen QR to customers.
   */
  startWatchdog(healthy: HealthCheck): void {
    const period = this.watchdogMs;
    if (!this.enabled || period === undefined) return;
    let checking = false;
    this.timer = setInterval(() => {
      // an answer still awaited is not a pet: a hung check ends in systemd's restart, as it should
      if (checking) return;
      checking = true;
      void Promise.resolve()
        .then(healthy)
        .catch((err: unknown) => (err as Error).message ?? String(err))
        .then((problem) => {
          checking = false;
          if (problem === undefined) this.send('WATCHDOG=1');
          else {
            this.status(`unhealthy: ${problem}`);
            this.logger.error({ problem }, 'health check failed: not petting the systemd watchdog');
          }
        });
    }, Math.max(100, Math.floor(period / 2)));
    this.timer.unref();
  }

  stopping(): void {
    this.send('STOPPING=1');
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.child?.stdin?.end();
    this.child = undefined;
  }
}
