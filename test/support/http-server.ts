/** Local HTTP servers for tests, each on a free loopback port. */
import http2 from 'node:http2';
import type { Server } from 'node:net';

/** Listens on a free port of 127.0.0.1; resolves with the port. */
export async function listenOnFreePort(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('the server has no port');
  return address.port;
}

/** Stops `server` accepting connections; resolves once the open ones have ended. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    server.close((err) => (err ? reject(err) : resolve())),
  );
}

export interface H2cServer {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The HTTP/2 sessions open right now. */
  sessions: ReadonlySet<http2.ServerHttp2Session>;
  /** Closes every open session, then the server. */
  close(): Promise<void>;
}

/** An HTTP/2 server without TLS (h2c) for `handler`, e.g. one from connectNodeAdapter. */
export async function startH2cServer(
  handler: (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void,
): Promise<H2cServer> {
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  const port = await listenOnFreePort(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    sessions,
    close: async () => {
      for (const session of sessions) session.close();
      await closeServer(server);
    },
  };
}
