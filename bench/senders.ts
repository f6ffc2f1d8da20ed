// How the load generators send: @herald/client (Connect's gRPC client), a plain @grpc/grpc-js
// client loading proto/ at run time, or gRPC framing written straight onto node:http2 sessions.
// Shared by bench/load.ts and bench/floor.ts.
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  Channel,
  NotificationStatus,
  SendRequestSchema,
  SendResponseSchema,
  createHeraldClient,
} from '@herald/client';
import { envelope } from '../src/server/grpc-unary.js';

export type SendRequestInit = MessageInitShape<typeof SendRequestSchema>;

/** One Send over one connection: the id and initial status, or an error carrying a gRPC code. */
export type Send = (
  request: SendRequestInit,
) => Promise<{ id: string; status: NotificationStatus }>;

export interface Senders {
  /** One per connection; callers spread their Sends over them. */
  sends: Send[];
  /** The gRPC code of a failed Send, as `resource_exhausted`, `unavailable`, .... */
  codeName(err: unknown): string;
  close(): void;
}

export const CLIENTS = ['herald', 'grpc-js', 'h2'] as const;

export interface SenderOptions {
  client: (typeof CLIENTS)[number];
  url: string;
  connections: number;
  apiKey?: string | undefined;
  sendTimeout: number;
}

export const createSenders = (o: SenderOptions): Senders =>
  o.client === 'grpc-js' ? grpcJsSenders(o) : o.client === 'h2' ? h2Senders(o) : heraldSenders(o);

/** What a client option sends with, for reports. */
export const clientName = (c: SenderOptions['client']) =>
  c === 'grpc-js' ? '@grpc/grpc-js' : c === 'h2' ? 'gRPC framing on node:http2' : '@herald/client';

/** Sends through @herald/client over gRPC, one client (HTTP/2 session) per connection. */
function heraldSenders(o: SenderOptions): Senders {
  const clients = Array.from({ length: o.connections }, () =>
    createHeraldClient({ baseUrl: o.url, protocol: 'grpc', apiKey: o.apiKey }),
  );
  return {
    sends: clients.map(
      (client): Send =>
        (request) =>
          client.send(request, { timeoutMs: o.sendTimeout }),
    ),
    codeName(err) {
      const name = Code[ConnectError.from(err).code] ?? 'unknown';
      return name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
    },
    close: () => clients.forEach((c) => c.close()),
  };
}

type GrpcJsSend = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: { id: string; status: string }) => void,
) => void;

/**
 * Sends through a plain @grpc/grpc-js client that loads proto/ at run time (as the interop test
 * does): the same wire protocol for about a third of the client CPU per call of Connect's client,
 * so less of a shared machine goes to the load generator (bench/README.md measures both).
 */
function grpcJsSenders(o: SenderOptions): Senders {
  const definition = protoLoader.loadSync('herald/v1/notification.proto', {
    includeDirs: [fileURLToPath(new URL('../../proto', import.meta.url))],
    longs: String,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    herald: { v1: { NotificationService: typeof grpc.Client } };
  };
  const metadata = new grpc.Metadata();
  if (o.apiKey !== undefined) metadata.set('authorization', `Bearer ${o.apiKey}`);
  const clients = Array.from(
    { length: o.connections },
    () =>
      new pkg.herald.v1.NotificationService(
        new URL(o.url).host,
        grpc.credentials.createInsecure(),
        // A subchannel pool of its own: one HTTP/2 connection per client, as with @herald/client.
        { 'grpc.use_local_subchannel_pool': 1 },
      ),
  );
  return {
    sends: clients.map((client): Send => {
      const send = (client as unknown as { send: GrpcJsSend }).send.bind(client);
      return (request) =>
        new Promise((resolve, reject) => {
          // proto-loader takes enums by name.
          const channel = `CHANNEL_${Channel[request.channel ?? Channel.UNSPECIFIED]}`;
          const options = { deadline: Date.now() + o.sendTimeout };
          send({ ...request, channel }, metadata, options, (err, res) => {
            if (err || !res) {
              reject(err ?? new Error('empty response'));
              return;
            }
            const name = res.status.replace(/^NOTIFICATION_STATUS_/, '');
            resolve({
              id: res.id,
              status: NotificationStatus[name as keyof typeof NotificationStatus],
            });
          });
        });
    }),
    codeName(err) {
      const code = (err as Partial<grpc.ServiceError>).code;
      return code === undefined ? 'unknown' : (grpc.status[code]?.toLowerCase() ?? 'unknown');
    },
    close: () => clients.forEach((c) => c.close()),
  };
}

/** A failed Send of the h2 client: the gRPC status code and message from the trailers. */
class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Sends with gRPC framing written straight onto node:http2 sessions: a 5-byte envelope around the
 * protobuf-es encoding, the answer's status read from its trailers. The least client CPU per call
 * of the three (bench/README.md), so the least of a shared machine goes to the load generator;
 * only Send, and only what a load test needs (no compression, retries or metadata beyond the key).
 */
function h2Senders(o: SenderOptions): Senders {
  const sessions = Array.from({ length: o.connections }, () => {
    const session = http2.connect(o.url);
    // A failed session fails the calls on it; the error itself needs no handler of its own.
    session.on('error', () => undefined);
    return session;
  });
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': '/herald.v1.NotificationService/Send',
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-timeout': `${o.sendTimeout}m`,
  };
  if (o.apiKey !== undefined) headers.authorization = `Bearer ${o.apiKey}`;
  return {
    sends: sessions.map(
      (session): Send =>
        (request) =>
          new Promise((resolve, reject) => {
            const body = envelope(toBinary(SendRequestSchema, create(SendRequestSchema, request)));
            const stream = session.request(headers);
            const chunks: Buffer[] = [];
            let status: string | undefined;
            let message = '';
            const read = (h: http2.IncomingHttpHeaders) => {
              if (typeof h['grpc-status'] === 'string') status = h['grpc-status'];
              if (typeof h['grpc-message'] === 'string')
                message = decodeURIComponent(h['grpc-message']);
            };
            stream.on('response', read);
            stream.on('trailers', read);
            stream.on('data', (c: Buffer) => chunks.push(c));
            stream.on('error', (err: Error) => reject(new GrpcStatusError(14, err.message)));
            stream.on('close', () => {
              if (status !== '0') {
                reject(new GrpcStatusError(Number(status ?? 14), message || 'no gRPC status'));
                return;
              }
              const data = Buffer.concat(chunks);
              const res = fromBinary(SendResponseSchema, data.subarray(5));
              resolve({ id: res.id, status: res.status });
            });
            stream.end(body);
          }),
    ),
    codeName(err) {
      if (!(err instanceof GrpcStatusError)) return 'unknown';
      const name = Code[err.code] ?? 'unknown';
      return name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
    },
    close: () => sessions.forEach((s) => s.close()),
  };
}
