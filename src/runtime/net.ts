import net from 'node:net';

/**
 * A free TCP port on 127.0.0.1, for a server whose own URL must be known before it listens
 * (the relay puts its public URL into POS urls and notification_url).
 */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}
