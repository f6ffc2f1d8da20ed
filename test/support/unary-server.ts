/**
 * A bare node:http2 server whose NotificationService.Send is answered by the unary gRPC fast path
 * (src/server/grpc-unary.ts) with the implementation a test gives, no interceptors.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { HandlerContext } from '@connectrpc/connect';
import { NotificationService } from '@herald/client';
import { pino } from 'pino';
import type { Logger } from '../../src/domain/ports.js';
import { createGrpcUnaryHandler } from '../../src/server/grpc-unary.js';

export interface UnaryServerOptions {
  send: (req: { userId: string }, ctx: HandlerContext) => unknown;
  /** Default: one that is never aborted. */
  shutdownSignal?: AbortSignal;
  /** Default 1000. */
  maxTimeoutMs?: number;
  /** Default: silent. */
  logger?: Logger;
  /** Answers what the fast path leaves; default an empty 200. */
  left?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
}

export interface UnaryServer {
  url: string;
  /** Closes the server and every session still open to it. */
  close(): Promise<void>;
}

export async function startUnaryServer(o: UnaryServerOptions): Promise<UnaryServer> {
  const take = createGrpcUnaryHandler({
    services: [{ service: NotificationService, impl: { send: o.send } }],
    interceptors: [],
    readMaxBytes: 1024,
    maxTimeoutMs: o.maxTimeoutMs ?? 1000,
    shutdownSignal: o.shutdownSignal ?? new AbortController().signal,
    logger: o.logger ?? pino({ level: 'silent' }),
  });
  const left = o.left ?? ((_req, res) => res.end());
  const server = http2.createServer((req, res) => {
    if (!take(req, res)) left(req, res);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}
