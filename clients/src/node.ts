import * as http from 'node:http';
import * as https from 'node:https';
import type { Transport } from '@connectrpc/connect';
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import { createHeraldServiceClients, resolveHeraldClientOptions } from './options.js';
import type { HeraldClient, HeraldClientOptions } from './options.js';

export * from './exports.js';

/**
 * Creates a client of Herald's NotificationService for Node.js, over gRPC (the default), Connect or
 * gRPC-Web.
 *
 * The client owns one connection: one HTTP/2 session that every call multiplexes over (gRPC, or
 * any protocol with `httpVersion: '2'`), or a keep-alive pool of HTTP/1.1 sockets. Create one
 * client per process and target, not one per call. Idle connections do not keep the process
 * alive; `close()` releases them at once.
 */
export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  const resolved = resolveHeraldClientOptions(options, 'grpc');
  const common = {
    baseUrl: resolved.baseUrl,
    interceptors: resolved.interceptors,
    defaultTimeoutMs: resolved.defaultTimeoutMs,
  };

  let transport: Transport;
  let close: () => void;
  if (resolved.httpVersion === '2') {
    // Our own manager, rather than the one the transport would create, so close() can reach it.
    const sessionManager = new Http2SessionManager(resolved.baseUrl);
    close = () => sessionManager.abort();
    const http2Options = { ...common, httpVersion: '2' as const, sessionManager };
    transport =
      resolved.protocol === 'grpc'
        ? createGrpcTransport(http2Options)
        : resolved.protocol === 'connect'
          ? createConnectTransport({ ...http2Options, useBinaryFormat: resolved.useBinaryFormat })
          : createGrpcWebTransport({ ...http2Options, useBinaryFormat: resolved.useBinaryFormat });
  } else {
    const agent =
      new URL(resolved.baseUrl).protocol === 'https:'
        ? new https.Agent({ keepAlive: true })
        : new http.Agent({ keepAlive: true });
    close = () => agent.destroy();
    const http1Options = {
      ...common,
      httpVersion: '1.1' as const,
      nodeOptions: { agent },
      useBinaryFormat: resolved.useBinaryFormat,
    };
    transport =
      resolved.protocol === 'connect'
        ? createConnectTransport(http1Options)
        : createGrpcWebTransport(http1Options);
  }

  return createHeraldServiceClients(transport, close);
}
