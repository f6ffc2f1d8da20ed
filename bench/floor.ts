// The floor under bench/load.ts: the same clients (@herald/client over gRPC, or @grpc/grpc-js
// with --client grpc-js), connections and concurrency, against a Connect server that answers
// every Send with a fixed Notification and does nothing else — no authentication, database,
// queue, worker or watch. Its throughput is the most the RPC layer alone allows on this machine,
// and its CPU per call is what every Send costs both ends before Herald does any work.
// `npm run bench:floor -- --help`; bench/README.md has figures.
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  Channel,
  NotificationSchema,
  NotificationService,
  NotificationStatus,
  type SendRequest,
} from '@herald/client';
import { requireSupportedNode } from '../src/runtime.js';
import { createGrpcUnaryHandler } from '../src/server/grpc-unary.js';
import { CLIENTS, clientName, createSenders, type SenderOptions } from './senders.js';

const usage = `Usage: npm run bench:floor -- [options]

  --concurrency <n>   Sends in flight at once (default 200, as bench/load.ts)
  --connections <n>   clients, each with its own HTTP/2 session (default 4)
  --client <name>     herald (@herald/client) | grpc-js (@grpc/grpc-js) | h2 (gRPC framing on
                      node:http2) (default herald)
  --duration <s>      seconds measured (default 15)
  --warmup <s>        seconds of the same load first, not measured (default 3)
  --server <name>     connect (Connect's handler) | grpc-unary (unary gRPC as Herald's api
                      answers it, src/server/grpc-unary.ts) (default connect)
`;

const SERVERS = ['connect', 'grpc-unary'];

/**
 * The server: a child process of its own, like herald, so each side's CPU is its own. `connect`
 * answers through Connect's handler; `grpc-unary` as Herald's api answers unary gRPC calls
 * (src/server/grpc-unary.ts), Connect's handler behind it for everything else.
 */
function serve(kind: string): void {
  const impl = {
    send(req: SendRequest) {
      const now = timestampNow();
      const notification = create(NotificationSchema, {
        id: '019a0000-0000-7000-8000-000000000000',
        userId: req.userId,
        channel: req.channel,
        status: NotificationStatus.PENDING,
        version: 1n,
        createdAt: now,
        updatedAt: now,
      });
      return { id: notification.id, notification };
    },
  };
  const routes = (router: ConnectRouter) => router.service(NotificationService, impl);
  const connect = connectNodeAdapter({ routes });
  const unary = createGrpcUnaryHandler({
    services: [{ service: NotificationService, impl }],
    interceptors: [],
    readMaxBytes: 1_048_576,
    maxTimeoutMs: 30_000,
    shutdownSignal: new AbortController().signal,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const server = http2.createServer(
    kind === 'grpc-unary'
      ? (req, res) => {
          if (!unary(req, res)) connect(req, res);
        }
      : connect,
  );
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as AddressInfo).port });
  });
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  });
  process.on('disconnect', () => process.exit(0));
}

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

async function main(): Promise<void> {
  requireSupportedNode('bench:floor');
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '200' },
      connections: { type: 'string', default: '4' },
      client: { type: 'string', default: 'herald' },
      duration: { type: 'string', default: '15' },
      warmup: { type: 'string', default: '3' },
      server: { type: 'string', default: 'connect' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  const positive = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  const concurrency = Math.floor(positive('concurrency', values.concurrency));
  const connections = Math.floor(positive('connections', values.connections));
  const duration = positive('duration', values.duration);
  const warmup = Number(values.warmup);
  const client = values.client as SenderOptions['client'];
  if (!CLIENTS.includes(client)) throw new Error(`--client must be one of ${CLIENTS.join(', ')}`);

  const server = values.server;
  if (!SERVERS.includes(server)) throw new Error(`--server must be one of ${SERVERS.join(', ')}`);
  const child = fork(new URL(import.meta.url), ['--serve', server], { stdio: 'inherit' });
  const ask = <T>(key: string, send?: string) =>
    new Promise<T>((resolve) => {
      const on = (m: Record<string, T>) => {
        if (key in m) {
          child.off('message', on);
          resolve(m[key] as T);
        }
      };
      child.on('message', on);
      if (send) child.send(send);
    });
  const port = await ask<number>('port');
  const senders = createSenders({
    client,
    url: `http://127.0.0.1:${port}`,
    connections,
    sendTimeout: 10_000,
  });

  let done = 0;
  const run = async (seconds: number) => {
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, i) => {
        const send = senders.sends[i % connections]!;
        while (performance.now() < end) {
          await send({
            userId: `floor-${i % 8}`,
            channel: Channel.IN_APP,
            content: { title: 'Herald load test', body: `Herald load test notification ${done}` },
            category: 'bench',
          });
          done++;
        }
      }),
    );
  };

  try {
    if (warmup > 0) await run(warmup);
    done = 0;
    const server0 = await ask<NodeJS.CpuUsage>('cpu', 'cpu');
    const client0 = process.cpuUsage();
    const t0 = performance.now();
    await run(duration);
    const seconds = (performance.now() - t0) / 1000;
    const clientMs = cpuMs(process.cpuUsage(client0));
    const serverMs = cpuMs(await ask<NodeJS.CpuUsage>('cpu', 'cpu')) - cpuMs(server0);
    const result = {
      bench: 'rpc-floor',
      node: process.version,
      client,
      server,
      concurrency,
      connections,
      durationS: duration,
      calls: done,
      callsPerSec: Math.round(done / seconds),
      clientCpuMsPerCall: Number((clientMs / done).toFixed(3)),
      serverCpuMsPerCall: Number((serverMs / done).toFixed(3)),
      coresBusy: Number(((clientMs + serverMs) / 1000 / seconds).toFixed(2)),
    };
    process.stdout.write(
      [
        '',
        `RPC floor: unary Send over gRPC to a server that does nothing else (${server})`,
        `  client ${clientName(client)}, ${connections} connections, ${concurrency} concurrent, ${duration} s after ${warmup} s of warm-up`,
        '',
        `  calls/s                ${result.callsPerSec.toLocaleString('en-US')}`,
        `  client CPU per call    ${result.clientCpuMsPerCall} ms`,
        `  server CPU per call    ${result.serverCpuMsPerCall} ms`,
        `  cores busy             ${result.coresBusy}`,
        '',
        JSON.stringify(result),
        '',
      ].join('\n'),
    );
  } finally {
    senders.close();
    child.disconnect();
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt !== -1) serve(process.argv[serveAt + 1] ?? 'connect');
else
  main().catch((err: unknown) => {
    process.stderr.write(`floor bench failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
