/**
 * A TCP proxy in front of a real service (PostgreSQL, say) that a test can take down and bring
 * back: the service itself is untouched and shared, but to the process behind the proxy it looks
 * stopped — open connections are cut and new ones refused — and then started again, on the same
 * port.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  port: number;
  /** Cuts every open connection and stops listening: connecting is refused until `up()`. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    // A cut connection is the point of this proxy, not an error of the test.
    s.on('error', () => s.destroy());
  };
  let server: Server | null = null;
  let port = 0;

  async function up(): Promise<void> {
    if (server !== null) return;
    const s = createServer((client) => {
      const upstream = createConnection(target);
      track(client);
      track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    s.listen(port, '127.0.0.1');
    await once(s, 'listening');
    const address = s.address();
    if (typeof address !== 'object' || address === null) throw new Error('proxy has no port');
    port = address.port;
    server = s;
  }

  async function down(): Promise<void> {
    const s = server;
    server = null;
    if (s === null) return;
    const closed = once(s, 'close');
    s.close();
    for (const socket of sockets) socket.destroy();
    await closed;
  }

  await up();
  return {
    get port() {
      return port;
    },
    down,
    up,
    close: down,
  };
}
