import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import { createHeraldServiceClients, resolveHeraldClientOptions } from './options.js';
import type { HeraldClient, HeraldClientOptions } from './options.js';

export * from './exports.js';

/**
 * Creates a client of Herald's NotificationService for browsers (or any runtime with `fetch`), over
 * Connect (the default) or gRPC-Web. `protocol: 'grpc'` throws: browsers cannot speak gRPC.
 * `httpVersion` is ignored — the browser negotiates it.
 */
export function createHeraldClient(options: HeraldClientOptions): HeraldClient {
  if (options.protocol === 'grpc') {
    throw new Error(
      "Herald client: browsers cannot speak gRPC (it needs HTTP/2 trailers, which fetch does not expose); use protocol 'grpc-web' or 'connect'",
    );
  }
  // httpVersion is a Node option; drop it so the gRPC-only HTTP/2 check cannot fire here.
  const resolved = resolveHeraldClientOptions({ ...options, httpVersion: undefined }, 'connect');
  const transportOptions = {
    baseUrl: resolved.baseUrl,
    interceptors: resolved.interceptors,
    defaultTimeoutMs: resolved.defaultTimeoutMs,
    useBinaryFormat: resolved.useBinaryFormat,
  };
  const transport =
    resolved.protocol === 'grpc-web'
      ? createGrpcWebTransport(transportOptions)
      : createConnectTransport(transportOptions);
  // fetch owns the connections; there is nothing of ours to release.
  return createHeraldServiceClients(transport, () => {});
}
