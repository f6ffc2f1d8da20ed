import * as http from 'node:http';
import type { Socket } from 'node:net';
import { Code, ConnectError } from '@connectrpc/connect';
import type { ConnectRouter, HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  Channel,
  NotificationService,
  NotificationStatus,
  createHeraldClient,
} from '../../clients/src/node.js';
import type { HeraldClient, HeraldClientOptions } from '../../clients/src/node.js';
import { createHeraldClient as createWebHeraldClient } from '../../clients/src/web.js';
import { rejection } from '../support/connect.js';
import { closeServer, listenOnFreePort, startH2cServer } from '../support/http-server.js';
import type { H2cServer } from '../support/http-server.js';

/** What the fake service saw of one call. */
interface SeenCall {
  rpc: string;
  authorization: string | null;
  tenant: string | null;
  contentType: string | null;
  timeoutMs: number | undefined;
}

const seen: SeenCall[] = [];

function admit(rpc: string, ctx: HandlerContext): void {
  const authorization = ctx.requestHeader.get('authorization');
  seen.push({
    rpc,
    authorization,
    tenant: ctx.requestHeader.get('x-herald-tenant'),
    contentType: ctx.requestHeader.get('content-type'),
    timeoutMs: ctx.timeoutMs(),
  });
  if (authorization !== 'Bearer k1') {
    throw new ConnectError('missing or unknown API key', Code.Unauthenticated);
  }
}

/** Stands in for the api at the wire: just enough behaviour to tell the calls apart. */
const fakeNotificationService: Partial<ServiceImpl<typeof NotificationService>> = {
  async send(req, ctx) {
    admit('send', ctx);
    if (req.userId === 'never-answered') {
      // Answers only when the deadline cancels the call.
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      ctx.signal.throwIfAborted();
    }
    return { id: req.userId, status: NotificationStatus.PENDING };
  },
  getNotification(req, ctx) {
    admit('getNotification', ctx);
    return { notification: { id: req.id, status: NotificationStatus.DELIVERED } };
  },
  async *watchNotifications(req, ctx) {
    admit('watchNotifications', ctx);
    const userId = req.target.case === 'userId' ? req.target.value : '';
    const statuses = [
      NotificationStatus.PENDING,
      NotificationStatus.PROCESSING,
      NotificationStatus.DELIVERED,
    ];
    for (const [index, status] of statuses.entries()) {
      await Promise.resolve();
      yield { notification: { id: 'n1', userId, status, version: BigInt(index + 1) } };
    }
  },
};

const handler = connectNodeAdapter({
  routes: (router: ConnectRouter) => router.service(NotificationService, fakeNotificationService),
});
const h1Server = http.createServer(handler);
const h1Sockets = new Set<Socket>();
h1Server.on('connection', (socket: Socket) => {
  h1Sockets.add(socket);
  socket.on('close', () => h1Sockets.delete(socket));
});

let h2Server: H2cServer;
let h2Url = '';
let h1Url = '';

beforeAll(async () => {
  h2Server = await startH2cServer(handler);
  h2Url = h2Server.url;
  h1Url = `http://127.0.0.1:${await listenOnFreePort(h1Server)}`;
});

afterAll(async () => {
  h1Server.closeAllConnections();
  await Promise.all([h2Server.close(), closeServer(h1Server)]);
});

const clients: HeraldClient[] = [];

function track(client: HeraldClient): HeraldClient {
  clients.push(client);
  return client;
}

beforeEach(() => {
  seen.length = 0;
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

interface ProtocolCase {
  name: string;
  build: 'node' | 'web';
  server: 'h2' | 'h1';
  options: Omit<HeraldClientOptions, 'baseUrl'>;
  contentType: string;
}

const protocolCases: ProtocolCase[] = [
  {
    name: 'grpc over HTTP/2',
    build: 'node',
    server: 'h2',
    options: {},
    contentType: 'application/grpc+proto',
  },
  {
    name: 'connect JSON over HTTP/1.1',
    build: 'node',
    server: 'h1',
    options: { protocol: 'connect' },
    contentType: 'application/json',
  },
  {
    name: 'grpc-web over HTTP/1.1',
    build: 'node',
    server: 'h1',
    options: { protocol: 'grpc-web' },
    contentType: 'application/grpc-web+proto',
  },
  {
    name: 'connect binary over HTTP/2',
    build: 'node',
    server: 'h2',
    options: { protocol: 'connect', httpVersion: '2', useBinaryFormat: true },
    contentType: 'application/proto',
  },
  {
    name: 'grpc-web over HTTP/2',
    build: 'node',
    server: 'h2',
    options: { protocol: 'grpc-web', httpVersion: '2' },
    contentType: 'application/grpc-web+proto',
  },
  {
    name: 'connect JSON over fetch (browser build)',
    build: 'web',
    server: 'h1',
    options: {},
    contentType: 'application/json',
  },
  {
    name: 'grpc-web over fetch (browser build)',
    build: 'web',
    server: 'h1',
    options: { protocol: 'grpc-web' },
    contentType: 'application/grpc-web+proto',
  },
];

function clientFor(c: ProtocolCase, extra: Omit<HeraldClientOptions, 'baseUrl'> = {}) {
  const options = { baseUrl: c.server === 'h2' ? h2Url : h1Url, ...c.options, ...extra };
  return track(c.build === 'node' ? createHeraldClient(options) : createWebHeraldClient(options));
}

const sendRequest = {
  userId: 'u1',
  channel: Channel.IN_APP,
  content: { title: 'Hello' },
};

describe('createHeraldClient', () => {
  it.each(protocolCases)('sends, gets and watches when the protocol is $name', async (c) => {
    const client = clientFor(c, { apiKey: 'k1' });

    const sent = await client.send(sendRequest);
    const got = await client.getNotification({ id: 'n1' });
    const watched: NotificationStatus[] = [];
    for await (const res of client.watchNotifications({
      target: { case: 'userId', value: 'u1' },
    })) {
      watched.push(res.notification?.status ?? NotificationStatus.UNSPECIFIED);
    }

    expect(sent.id).toBe('u1');
    expect(sent.status).toBe(NotificationStatus.PENDING);
    expect(got.notification?.id).toBe('n1');
    expect(watched).toEqual([
      NotificationStatus.PENDING,
      NotificationStatus.PROCESSING,
      NotificationStatus.DELIVERED,
    ]);
    expect(seen.map((call) => call.rpc)).toEqual(['send', 'getNotification', 'watchNotifications']);
    expect(seen[0]?.contentType).toBe(c.contentType);
  });

  it.each(protocolCases)(
    'sends the api key and the fixed headers when the protocol is $name',
    async (c) => {
      const client = clientFor(c, { apiKey: 'k1', headers: { 'x-herald-tenant': 't1' } });

      await client.send(sendRequest);

      expect(seen).toEqual([expect.objectContaining({ authorization: 'Bearer k1', tenant: 't1' })]);
    },
  );

  it('is rejected as unauthenticated when no api key is set', async () => {
    const client = track(createHeraldClient({ baseUrl: h2Url }));

    const err = await rejection(client.send(sendRequest));

    expect(err.code).toBe(Code.Unauthenticated);
    expect(seen[0]?.authorization).toBeNull();
  });

  it('sends the call header instead of the api key when a call sets authorization', async () => {
    const client = track(createHeraldClient({ baseUrl: h2Url, apiKey: 'k1' }));

    const err = await rejection(
      client.send(sendRequest, { headers: { authorization: 'Bearer other' } }),
    );

    expect(err.code).toBe(Code.Unauthenticated);
    expect(seen[0]?.authorization).toBe('Bearer other');
  });

  it.each(protocolCases)(
    'gives the server a deadline when timeoutMs is set and the protocol is $name',
    async (c) => {
      const client = clientFor(c, { apiKey: 'k1', timeoutMs: 5_000 });

      await client.send(sendRequest);

      const timeoutMs = seen[0]?.timeoutMs;
      expect(timeoutMs).toBeGreaterThan(0);
      expect(timeoutMs).toBeLessThanOrEqual(5_000);
    },
  );

  it('gives the server no deadline when timeoutMs is not set', async () => {
    const client = track(createHeraldClient({ baseUrl: h2Url, apiKey: 'k1' }));

    await client.send(sendRequest);

    expect(seen[0]?.timeoutMs).toBeUndefined();
  });

  it('uses the call timeout when a call sets timeoutMs', async () => {
    const client = track(createHeraldClient({ baseUrl: h2Url, apiKey: 'k1', timeoutMs: 60_000 }));

    await client.send(sendRequest, { timeoutMs: 1_000 });

    expect(seen[0]?.timeoutMs).toBeLessThanOrEqual(1_000);
  });

  it('gives the server no deadline when a call sets timeoutMs to 0', async () => {
    const client = track(createHeraldClient({ baseUrl: h2Url, apiKey: 'k1', timeoutMs: 60_000 }));

    await client.send(sendRequest, { timeoutMs: 0 });

    expect(seen[0]?.timeoutMs).toBeUndefined();
  });

  it('fails with deadline exceeded when the server does not answer within timeoutMs', async () => {
    const client = track(createHeraldClient({ baseUrl: h2Url, apiKey: 'k1', timeoutMs: 200 }));

    const err = await rejection(client.send({ ...sendRequest, userId: 'never-answered' }));

    expect(err.code).toBe(Code.DeadlineExceeded);
  });

  it('throws when the protocol is grpc over HTTP/1.1', () => {
    expect(() =>
      createHeraldClient({ baseUrl: h1Url, protocol: 'grpc', httpVersion: '1.1' }),
    ).toThrow(/gRPC needs HTTP\/2/);
  });

  it('throws when baseUrl is not an http URL', () => {
    expect(() => createHeraldClient({ baseUrl: 'localhost:8080' })).toThrow(/baseUrl/);
  });

  it('throws when timeoutMs is not positive', () => {
    expect(() => createHeraldClient({ baseUrl: h2Url, timeoutMs: 0 })).toThrow(/timeoutMs/);
  });

  it('closes its HTTP/2 session when close is called', async () => {
    await expect.poll(() => h2Server.sessions.size).toBe(0);
    const client = createHeraldClient({ baseUrl: h2Url, apiKey: 'k1' });
    await client.send(sendRequest);
    expect(h2Server.sessions.size).toBe(1);

    client.close();

    await expect.poll(() => h2Server.sessions.size).toBe(0);
  });

  it('closes its HTTP/1.1 sockets when close is called', async () => {
    // Earlier fetch-based clients leave keep-alive sockets that only the server can close.
    h1Server.closeIdleConnections();
    await expect.poll(() => h1Sockets.size).toBe(0);
    const client = createHeraldClient({ baseUrl: h1Url, apiKey: 'k1', protocol: 'connect' });
    await client.send(sendRequest);
    expect(h1Sockets.size).toBe(1);

    client.close();

    await expect.poll(() => h1Sockets.size).toBe(0);
  });
});

describe('createHeraldClient (browser build)', () => {
  it('throws when the protocol is grpc', () => {
    expect(() => createWebHeraldClient({ baseUrl: h1Url, protocol: 'grpc' })).toThrow(
      /browsers cannot speak gRPC.*'grpc-web' or 'connect'/,
    );
  });
});
