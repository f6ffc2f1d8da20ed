// How the load generators send: @herald/client (Connect's gRPC client) or a plain @grpc/grpc-js
// client loading proto/ at run time. Shared by bench/load.ts and bench/floor.ts.
import { fileURLToPath } from 'node:url';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import type { SendRequestSchema } from '@herald/client';

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

export interface SenderOptions {
  client: 'herald' | 'grpc-js';
  url: string;
  connections: number;
  apiKey?: string | undefined;
  sendTimeout: number;
}

export const createSenders = (o: SenderOptions): Senders =>
  o.client === 'grpc-js' ? grpcJsSenders(o) : heraldSenders(o);

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
