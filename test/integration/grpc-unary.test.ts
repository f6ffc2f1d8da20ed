/**
 * Plain unary gRPC calls are answered by src/server/grpc-unary.ts instead of Connect's request
 * pipeline; the answers must be Connect's. Every request below goes, byte for byte, to an api with
 * the fast path and to one without it (HERALD_GRPC_FAST_PATH=off), and the two answers are
 * compared whole: HTTP status, headers, the response message, and the trailers with the gRPC
 * status, message and details.
 */
import http2 from 'node:http2';
import { gunzipSync } from 'node:zlib';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { findTrailerError } from '@connectrpc/connect/protocol-grpc';
import {
  Channel,
  GetNotificationRequestSchema,
  ListNotificationsRequestSchema,
  ListNotificationsResponseSchema,
  NotificationStatus,
  SendRequestSchema,
  SendResponseSchema,
} from '@herald/client';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApiKey } from '../support/access.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { startUnaryServer } from '../support/unary-server.js';

const SEND = '/herald.v1.NotificationService/Send';
const TENANT = 'fast-path';
/** Both apis: authentication on, two Sends per user a minute, small request and deadline caps. */
const ENV = {
  HERALD_AUTH: 'required',
  HERALD_TOKEN_SECRET: 'a-test-secret-of-at-least-thirty-two-characters',
  HERALD_RATE_LIMITS: JSON.stringify({ default: { limit: 2, windowMs: 60_000 } }),
  HERALD_MAX_REQUEST_BYTES: '2048',
  HERALD_MAX_TIMEOUT_MS: '5000',
};

interface Side {
  t: TestHerald;
  session: http2.ClientHttp2Session;
  sendKey: string;
  readKey: string;
}

let fast: Side;
let connect: Side;

async function side(env: Record<string, string>): Promise<Side> {
  const t = await startTestHerald({ env: { ...ENV, ...env } });
  return {
    t,
    session: http2.connect(t.h2cUrl),
    sendKey: await createTestApiKey(t.db.pool, TENANT, ['send', 'read']),
    readKey: await createTestApiKey(t.db.pool, TENANT, ['read']),
  };
}

beforeAll(async () => {
  [fast, connect] = await Promise.all([side({}), side({ HERALD_GRPC_FAST_PATH: 'off' })]);
});

afterAll(async () => {
  for (const s of [fast, connect]) {
    s?.session.close();
    await s?.t.stop();
  }
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  trailers: Record<string, string>;
}

type Key = 'send' | 'read' | 'none';

/** One raw gRPC call: the request's bytes as given, the answer as it came. */
function call(
  s: Side,
  path: string,
  body: Uint8Array,
  key: Key,
  extra: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...extra,
    };
    if (key !== 'none') headers.authorization = `Bearer ${key === 'send' ? s.sendKey : s.readKey}`;
    const stream = s.session.request(headers, { endStream: false });
    let status = 0;
    let responseHeaders: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = plain(h);
      // A trailers-only answer carries the status in its headers.
      if (h['grpc-status'] !== undefined) trailers = plain(h);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('trailers', (h: http2.IncomingHttpHeaders) => (trailers = plain(h)));
    stream.on('error', reject);
    stream.on('close', () =>
      resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks), trailers }),
    );
    stream.end(body);
  });
}

function plain(h: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(':') || k === 'date' || v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** A gRPC message envelope; `flags` and `length` may lie, to make malformed requests. */
function envelope(bytes: Uint8Array, flags = 0, length = bytes.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, bytes]);
}

const sendBytes = (userId: string, body = 'hello') =>
  toBinary(
    SendRequestSchema,
    create(SendRequestSchema, { userId, channel: Channel.IN_APP, content: { body } }),
  );

/** The same call to both apis, one after the other. */
async function both(path: string, body: Uint8Array, key: Key, extra?: Record<string, string>) {
  const a = await call(fast, path, body, key, extra);
  const b = await call(connect, path, body, key, extra);
  return { fast: a, connect: b };
}

/** The gRPC status in the trailers: code, message and the type names of its details. */
function statusOf(a: Answer) {
  const err = findTrailerError(new Headers(a.trailers));
  return {
    code: a.trailers['grpc-status'],
    message: err?.rawMessage ?? '',
    details: (err?.details ?? []).map((d) => ('type' in d ? d.type : d.desc.typeName)),
  };
}

describe('unary gRPC with and without the fast path', () => {
  it('answers an accepted Send alike: headers, rate-limit headers, message and trailers', async () => {
    const r = await both(SEND, envelope(sendBytes('u-ok')), 'send');
    expect(r.fast.status).toBe(200);
    expect(r.fast.headers).toEqual(r.connect.headers);
    expect(r.fast.headers['content-type']).toBe('application/grpc+proto');
    expect(r.fast.headers['ratelimit-policy']).toMatch(/;q=2;w=60$/);
    expect(r.fast.trailers).toEqual(r.connect.trailers);
    expect(r.fast.trailers).toEqual({ 'grpc-status': '0' });
    const [f, c] = [r.fast, r.connect].map((a) =>
      fromBinary(SendResponseSchema, a.body.subarray(5)),
    );
    expect(f?.status).toBe(NotificationStatus.PENDING);
    expect({ ...f, id: '', createdAt: undefined }).toEqual({ ...c, id: '', createdAt: undefined });
  });

  it.each([
    ['an invalid Send (BadRequest details)', SEND, () => envelope(sendBytes('')), 'send'],
    ['no credentials', SEND, () => envelope(sendBytes('u1')), 'none'],
    ['a key without the send scope', SEND, () => envelope(sendBytes('u1')), 'read'],
    [
      'a message over the size cap',
      SEND,
      () => envelope(sendBytes('u1', 'x'.repeat(3000))),
      'send',
    ],
    [
      'bytes that are no SendRequest',
      SEND,
      () => envelope(Buffer.from([0xff, 0xff, 0xff])),
      'send',
    ],
    ['a compressed flag without grpc-encoding', SEND, () => envelope(sendBytes('u1'), 1), 'send'],
    ['an empty body', SEND, () => new Uint8Array(0), 'send'],
    ['a cut-off envelope', SEND, () => envelope(sendBytes('u1'), 0, 100), 'send'],
    [
      'two messages for a unary method',
      SEND,
      () => Buffer.concat([envelope(sendBytes('u1')), envelope(sendBytes('u2'))]),
      'send',
    ],
    [
      'a GetNotification of an id that does not exist',
      '/herald.v1.NotificationService/GetNotification',
      () =>
        envelope(
          toBinary(
            GetNotificationRequestSchema,
            create(GetNotificationRequestSchema, { id: '019a0000-0000-7000-8000-000000000000' }),
          ),
        ),
      'read',
    ],
  ] as const)('answers %s alike', async (_name, path, body, key) => {
    const r = await both(path, body(), key);
    expect(r.fast.status).toBe(r.connect.status);
    expect(r.fast.headers).toEqual(r.connect.headers);
    expect(r.fast.body).toEqual(r.connect.body);
    expect(r.fast.trailers).toEqual(r.connect.trailers);
    expect(statusOf(r.fast).code).not.toBe('0');
  });

  it.each([
    ['a deadline over the cap', '10S'],
    ['a deadline that is no gRPC timeout', 'soon'],
  ])('answers %s alike, with InvalidArgument', async (_name, timeout) => {
    const r = await both(SEND, envelope(sendBytes('u1')), 'send', { 'grpc-timeout': timeout });
    expect(r.fast.headers).toEqual(r.connect.headers);
    expect(r.fast.trailers).toEqual(r.connect.trailers);
    expect(statusOf(r.fast).code).toBe('3');
  });

  it('answers a Send over the rate limit alike: ResourceExhausted, RetryInfo, rate-limit trailers', async () => {
    for (let i = 0; i < 2; i++) await both(SEND, envelope(sendBytes('u-limited')), 'send');
    const r = await both(SEND, envelope(sendBytes('u-limited')), 'send');
    expect(r.fast.headers).toEqual(r.connect.headers);
    expect(statusOf(r.fast)).toEqual(statusOf(r.connect));
    expect(statusOf(r.fast).code).toBe('8');
    expect(statusOf(r.fast).details).toEqual(['google.rpc.RetryInfo']);
    // The same trailers; the seconds left in the window may differ by the time between the calls.
    expect(Object.keys(r.fast.trailers).sort()).toEqual(Object.keys(r.connect.trailers).sort());
    expect(r.fast.trailers.ratelimit).toMatch(/;r=0;t=\d+$/);
    expect(r.fast.trailers['retry-after']).toMatch(/^\d+$/);
  });

  it('negotiates response compression alike: the header always, gzip for a large answer', async () => {
    // As @grpc/grpc-js asks.
    const accept = { 'grpc-accept-encoding': 'identity,deflate,gzip' };
    const small = await both(SEND, envelope(sendBytes('u-accepts')), 'send', accept);
    expect(small.fast.headers).toEqual(small.connect.headers);
    expect(small.fast.headers['grpc-encoding']).toBe('gzip');
    expect(small.fast.body[0]).toBe(0);
    expect(small.connect.body[0]).toBe(0);
    // A dozen more notifications make the tenant's list longer than 1 KiB.
    for (let i = 0; i < 12; i++) await both(SEND, envelope(sendBytes(`u-list-${i}`)), 'send');
    const list = envelope(
      toBinary(
        ListNotificationsRequestSchema,
        create(ListNotificationsRequestSchema, { pageSize: 100 }),
      ),
    );
    const large = await both(
      '/herald.v1.NotificationService/ListNotifications',
      list,
      'read',
      accept,
    );
    expect(large.fast.headers).toEqual(large.connect.headers);
    expect(large.fast.trailers).toEqual(large.connect.trailers);
    const [f, c] = [large.fast, large.connect].map((a) => {
      expect(a.body[0]).toBe(1);
      const page = fromBinary(ListNotificationsResponseSchema, gunzipSync(a.body.subarray(5)));
      return page.notifications.map((n) => n.userId).sort();
    });
    expect(f).toEqual(c);
    expect(f).toContain('u-list-11');
  });

  it('answers a ListNotifications alike, message included', async () => {
    const body = envelope(
      toBinary(
        ListNotificationsRequestSchema,
        create(ListNotificationsRequestSchema, { userId: 'nobody', pageSize: 10 }),
      ),
    );
    const r = await both('/herald.v1.NotificationService/ListNotifications', body, 'read');
    expect(r.fast.headers).toEqual(r.connect.headers);
    expect(r.fast.trailers).toEqual({ 'grpc-status': '0' });
    expect(r.fast.trailers).toEqual(r.connect.trailers);
    expect(r.fast.body).toEqual(r.connect.body);
    expect(fromBinary(ListNotificationsResponseSchema, r.fast.body.subarray(5))).toBeDefined();
  });
});

describe('createGrpcUnaryHandler', () => {
  it('takes plain unary gRPC calls to the methods it was given and leaves every other request', async () => {
    const seen: string[] = [];
    const server = await startUnaryServer({
      send(req) {
        seen.push(req.userId);
        return { id: 'taken', status: NotificationStatus.PENDING };
      },
      left(_req, res) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('left for Connect');
      },
    });
    const session = http2.connect(server.url);
    const s = { session, sendKey: '', readKey: '' } as unknown as Side;
    try {
      const request = envelope(sendBytes('u1'));
      for (const contentType of ['application/grpc', 'application/grpc+proto']) {
        const a = await call(s, SEND, request, 'none', { 'content-type': contentType });
        expect(a.status).toBe(200);
        expect(a.trailers).toEqual({ 'grpc-status': '0' });
        expect(fromBinary(SendResponseSchema, a.body.subarray(5)).id).toBe('taken');
      }
      expect(seen).toEqual(['u1', 'u1']);
      const left: [string, Record<string, string>][] = [
        [SEND, { 'content-type': 'application/grpc+json' }],
        [SEND, { 'content-type': 'application/proto' }],
        [SEND, { 'grpc-encoding': 'gzip' }],
        [SEND, { ':method': 'GET' }],
        ['/herald.v1.NotificationService/WatchNotifications', {}],
        ['/herald.v1.NotificationService/GetNotification', {}],
        ['/grpc.health.v1.Health/Check', {}],
      ];
      for (const [path, headers] of left) {
        const a = await call(
          s,
          path,
          headers[':method'] ? new Uint8Array(0) : request,
          'none',
          headers,
        );
        expect({ path, headers, status: a.status }).toEqual({ path, headers, status: 404 });
      }
      expect(seen).toHaveLength(2);
    } finally {
      session.close();
      await server.close();
    }
  });
});

describe('createGrpcUnaryHandler when the answer cannot be written', () => {
  it('resets the stream and logs, and the server goes on answering', async () => {
    const logged: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(line) });
    const server = await startUnaryServer({
      send(req, ctx) {
        // A header HTTP/2 forbids: writing the response head throws.
        if (req.userId === 'bad') ctx.responseHeader.set('transfer-encoding', 'chunked');
        return { id: 'ok', status: NotificationStatus.PENDING };
      },
      logger,
    });
    const session = http2.connect(server.url);
    const s = { session, sendKey: '', readKey: '' } as unknown as Side;
    try {
      await expect(call(s, SEND, envelope(sendBytes('bad')), 'none')).rejects.toThrow(
        /NGHTTP2_INTERNAL_ERROR|stream closed/i,
      );
      expect(logged.join('')).toContain('unary gRPC call could not be answered');
      const ok = await call(s, SEND, envelope(sendBytes('good')), 'none');
      expect(ok.trailers).toEqual({ 'grpc-status': '0' });
    } finally {
      session.close();
      await server.close();
    }
  });
});
