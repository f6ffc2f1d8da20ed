/**
 * RELIABILITY R15 beyond what send-validation.test.ts covers (the request-size and deadline caps
 * of Send): slow and silent clients are dropped on both ports while healthy Watch streams carry
 * on; the size limits of maps and of Watch are enforced through the api; and a burst of oversized
 * requests leaves the api process's memory bounded.
 */
import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Code } from '@connectrpc/connect';
import {
  Channel,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type WatchNotificationsResponse,
} from '@herald/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCleanups } from '../support/cleanups.js';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { killAll, spawnHerald } from '../support/processes.js';

/** Short deadlines, so the slow clients below are dropped quickly. */
const HEADERS_TIMEOUT_MS = 300;
const REQUEST_TIMEOUT_MS = 600;
const H2C_IDLE_TIMEOUT_MS = 300;
/** The gap between two bytes of a trickling client: well inside every deadline above. */
const TRICKLE_GAP_MS = 20;

let t: TestHerald;
let grpc: HeraldClient;
let connect: HeraldClient;
const cleanups = createCleanups();

beforeAll(async () => {
  t = await startTestHerald({
    env: {
      HERALD_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      HERALD_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HERALD_H2C_IDLE_TIMEOUT_MS: String(H2C_IDLE_TIMEOUT_MS),
    },
  });
  grpc = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc' });
  connect = createHeraldClient({ baseUrl: t.httpUrl, protocol: 'connect' });
});

afterEach(() => cleanups.runAll());

afterAll(async () => {
  grpc?.close();
  connect?.close();
  await killAll();
  await t?.stop();
});

const portOf = (url: string) => Number(new URL(url).port);

interface Trickled {
  /** Bytes written before the server closed the connection. */
  sent: number;
  /** Everything the server wrote, as latin1. */
  received: string;
}

/**
 * A slowloris client: writes `prefix` at once, then `text` one byte at a time, TRICKLE_GAP_MS apart
 * (each gap far inside every deadline, so only a deadline on the whole request can catch it),
 * stopping when the server closes the connection; then it sends nothing more and waits for the
 * server to close. Without `hold`, it gives up itself once everything is sent.
 */
function trickle(
  port: number,
  text: string,
  options: { prefix?: string; hold?: boolean } = {},
): Promise<Trickled> {
  const socket = net.connect(port, '127.0.0.1');
  if (options.prefix !== undefined) socket.write(options.prefix, 'latin1');
  let received = '';
  let sent = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
  });
  // A write racing the server's close fails with EPIPE or ECONNRESET: that is the close.
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let open = true;
  void closed.then(() => {
    open = false;
  });
  cleanups.add(() => {
    socket.destroy();
  });
  return (async () => {
    for (const byte of Buffer.from(text, 'latin1')) {
      if (!open) break;
      socket.write(Buffer.of(byte));
      sent += 1;
      await delay(TRICKLE_GAP_MS);
    }
    if (options.hold !== true && open) {
      // Every byte went through: the server never dropped it. End it so the test can report that.
      socket.destroy();
    }
    await closed;
    return { sent, received };
  })();
}

/** The types of the HTTP/2 frames in `bytes` (RFC 9113 §4.1: 3 bytes length, 1 byte type, …). */
function frameTypes(bytes: Buffer): number[] {
  const types: number[] = [];
  for (let i = 0; i + 9 <= bytes.length; i += 9 + bytes.readUIntBE(i, 3)) {
    types.push(bytes[i + 3] as number);
  }
  return types;
}
const SETTINGS_FRAME = 0x4;
const GOAWAY_FRAME = 0x7;

/** A Connect unary Send's request line and headers, as a browser or curl would send them. */
function sendHeaders(extra: string): string {
  return (
    'POST /herald.v1.NotificationService/Send HTTP/1.1\r\n' +
    'Host: 127.0.0.1\r\n' +
    'Content-Type: application/json\r\n' +
    'Connect-Protocol-Version: 1\r\n' +
    extra +
    '\r\n'
  );
}

/** A user watch that records what it receives until it is cancelled. */
function watchUser(client: HeraldClient, userId: string) {
  const received: WatchNotificationsResponse[] = [];
  const abort = new AbortController();
  let failure: unknown = null;
  let ended = false;
  const done = (async () => {
    try {
      for await (const res of client.watchNotifications(
        { target: { case: 'userId', value: userId }, initialCount: 1 },
        { signal: abort.signal, timeoutMs: 0 },
      )) {
        received.push(res);
      }
    } catch (err) {
      if (!abort.signal.aborted) failure = err;
    } finally {
      ended = true;
    }
  })();
  cleanups.add(async () => {
    abort.abort();
    await done;
  });
  return {
    statusesOf: (id: string) =>
      received.filter((r) => r.notification?.id === id).map((r) => r.notification?.status),
    /** Whether the stream is still open, and what it failed with if it is not. */
    state: () => ({ ended, failure }),
  };
}

describe('slow and silent clients', () => {
  it('drops an HTTP/1.1 client that trickles its request headers, answering 408', async () => {
    const headers = sendHeaders(`X-Padding: ${'p'.repeat(100)}\r\n`);

    const { sent, received } = await trickle(portOf(t.httpUrl), headers, { hold: true });

    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(sent).toBeLessThan(headers.length);
  });

  it('drops an HTTP/1.1 request whose declared body never arrives', async () => {
    const headers = sendHeaders('Content-Length: 200\r\n');

    const { received } = await trickle(portOf(t.httpUrl), '{"userId":"u-slow",', {
      prefix: headers,
      hold: true,
    });

    expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('resets an h2c stream whose request body never ends with CANCEL', async () => {
    const session = http2.connect(t.h2cUrl);
    cleanups.add(() => {
      session.destroy();
    });
    session.on('error', () => undefined);
    const stream = session.request(
      {
        ':method': 'POST',
        ':path': '/herald.v1.NotificationService/Send',
        'content-type': 'application/grpc',
        te: 'trailers',
      },
      { endStream: false },
    );
    stream.on('error', () => undefined);
    let status: number | undefined;
    stream.on('response', (headers) => {
      status = headers[':status'];
    });
    // A gRPC message that announces 100 bytes and brings 10.
    const envelope = Buffer.alloc(5 + 10);
    envelope.writeUInt32BE(100, 1);

    stream.write(envelope);
    await new Promise((resolve) => stream.once('close', resolve));

    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(status).toBeUndefined();
  });

  it('closes an h2c connection on which the client sends nothing, with GOAWAY', async () => {
    const socket = net.connect(portOf(t.h2cUrl), '127.0.0.1');
    cleanups.add(() => {
      socket.destroy();
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);

    await new Promise((resolve) => socket.once('close', resolve));

    const types = frameTypes(Buffer.concat(chunks));
    expect(types[0]).toBe(SETTINGS_FRAME);
    expect(types).toContain(GOAWAY_FRAME);
  });

  it('sends GOAWAY (NO_ERROR) to an h2c session that opens no stream', async () => {
    const session = http2.connect(t.h2cUrl);
    cleanups.add(() => {
      session.destroy();
    });
    session.on('error', () => undefined);

    const code = await new Promise<number>((resolve) =>
      session.once('goaway', (errorCode: number) => resolve(errorCode)),
    );
    await new Promise((resolve) => session.once('close', resolve));

    expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it('keeps a Watch open on each port, idle and then receiving, while slow clients are dropped', async () => {
    const userId = `u-watch-${randomUUID()}`;
    // The watches are live once they show the warm-up (initial_count 1).
    const warmUp = await grpc.send({ userId, channel: Channel.IN_APP, content: { title: 'hi' } });
    const overHttp1 = watchUser(connect, userId);
    const overH2c = watchUser(grpc, userId);
    await expect.poll(() => overHttp1.statusesOf(warmUp.id).length).toBeGreaterThan(0);
    await expect.poll(() => overH2c.statusesOf(warmUp.id).length).toBeGreaterThan(0);

    // Both watches now sit idle through every deadline: each of these clients is dropped only once
    // its deadline (the request timeout being the longest) has passed.
    const [slowHeaders, slowBody] = await Promise.all([
      trickle(portOf(t.httpUrl), sendHeaders(`X-Padding: ${'p'.repeat(100)}\r\n`), { hold: true }),
      trickle(portOf(t.httpUrl), '{"user', {
        prefix: sendHeaders('Content-Length: 100\r\n'),
        hold: true,
      }),
      trickle(portOf(t.h2cUrl), '', { hold: true }),
    ]);
    expect(slowHeaders.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(slowBody.received).toMatch(/^HTTP\/1\.1 408 /);

    const later = await grpc.send({ userId, channel: Channel.IN_APP, content: { title: 'later' } });
    await expect
      .poll(() => overHttp1.statusesOf(later.id), { timeout: 15_000 })
      .toContain(NotificationStatus.DELIVERED);
    await expect
      .poll(() => overH2c.statusesOf(later.id), { timeout: 15_000 })
      .toContain(NotificationStatus.DELIVERED);
    expect(overHttp1.state()).toEqual({ ended: false, failure: null });
    expect(overH2c.state()).toEqual({ ended: false, failure: null });
  });

  it('still serves both ports after dropping slow clients', async () => {
    await trickle(portOf(t.httpUrl), '{', {
      prefix: sendHeaders('Content-Length: 100\r\n'),
      hold: true,
    });

    const a = await grpc.send({
      userId: 'u-after',
      channel: Channel.IN_APP,
      content: { title: 'a' },
    });
    const b = await connect.send({
      userId: 'u-after',
      channel: Channel.IN_APP,
      content: { title: 'b' },
    });

    expect([a.id, b.id].every((id) => id !== '')).toBe(true);
  });
});

describe('size limits not covered by send-validation', () => {
  const inApp = { userId: 'u-limits', channel: Channel.IN_APP, content: { title: 't' } };

  it.each([
    [
      'a metadata key is longer than 64 characters',
      { ...inApp, metadata: { ['m'.repeat(65)]: 'v' } },
      `metadata["${'m'.repeat(64)}"]`,
    ],
    [
      'a content.data value is longer than 4,096 characters',
      { ...inApp, content: { title: 't', data: { k: 'v'.repeat(4_097) } } },
      'content.data["k"]',
    ],
    [
      'a content.data key is longer than 64 characters',
      { ...inApp, content: { title: 't', data: { ['d'.repeat(65)]: 'v' } } },
      `content.data["${'d'.repeat(64)}"]`,
    ],
  ])('Send fails with INVALID_ARGUMENT naming the field when %s', async (_, request, field) => {
    const err = await rejection(connect.send(request));

    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err)).toEqual([field]);
  });

  it.each([
    ['initial_count is above 100', { initialCount: 101 }, 'initial_count'],
    ['user_id is longer than 128 characters', { userId: 'u'.repeat(129) }, 'user_id'],
  ])(
    'WatchNotifications fails with INVALID_ARGUMENT naming the field when %s',
    async (_, overrides, field) => {
      const { userId = 'u-limits', initialCount = 0 } = overrides as {
        userId?: string;
        initialCount?: number;
      };
      for (const client of [grpc, connect]) {
        const stream = client.watchNotifications({
          target: { case: 'userId', value: userId },
          initialCount,
        });

        const err = await rejection(stream[Symbol.asyncIterator]().next());

        expect(err.code).toBe(Code.InvalidArgument);
        expect(violatedFields(err)).toEqual([field]);
      }
    },
  );

  it.each([
    [
      'after_version is set on a user watch',
      { target: { case: 'userId' as const, value: 'u-limits' }, afterVersion: 3n },
      'after_version',
    ],
    [
      'initial_count is set on a notification watch',
      { target: { case: 'notificationId' as const, value: randomUUID() }, initialCount: 5 },
      'initial_count',
    ],
  ])(
    'WatchNotifications fails with INVALID_ARGUMENT naming the option when %s (it would be ignored)',
    async (_, request, field) => {
      for (const client of [grpc, connect]) {
        const err = await rejection(
          client.watchNotifications(request)[Symbol.asyncIterator]().next(),
        );

        expect(err.code).toBe(Code.InvalidArgument);
        expect(violatedFields(err)).toEqual([field]);
      }
    },
  );

  it.each([
    [
      'a notification watch',
      {
        target: { case: 'notificationId' as const, value: 'not-a-uuid' },
        statuses: [99],
        initialCount: 5,
      },
      ['statuses', 'initial_count', 'notification_id'],
    ],
    [
      'a user watch',
      {
        target: { case: 'userId' as const, value: 'u'.repeat(129) },
        statuses: [99],
        afterVersion: 3n,
        initialCount: 101,
      },
      ['statuses', 'after_version', 'user_id', 'initial_count'],
    ],
  ])('WatchNotifications names every bad field of %s at once', async (_, request, fields) => {
    for (const client of [grpc, connect]) {
      const err = await rejection(
        client.watchNotifications(request)[Symbol.asyncIterator]().next(),
      );

      expect(err.code).toBe(Code.InvalidArgument);
      expect(violatedFields(err)).toEqual(fields);
    }
  });

  it('WatchNotifications fails with INVALID_ARGUMENT when the deadline is over the cap', async () => {
    for (const client of [grpc, connect]) {
      // HERALD_MAX_TIMEOUT_MS defaults to 30 s.
      const stream = client.watchNotifications(
        { target: { case: 'userId', value: 'u-limits' } },
        { timeoutMs: 60_000 },
      );

      const err = await rejection(stream[Symbol.asyncIterator]().next());

      expect(err.code).toBe(Code.InvalidArgument);
    }
  });
});

describe('memory under oversized requests', () => {
  /** The api's request cap here. */
  const CAP = 256 * 1024;
  /**
   * Each request is 8 times the cap: buffering them all would take REQUESTS x SIZE (400 MB), while
   * refusing each by the time a cap's worth is in bounds the total at REQUESTS x CAP (50 MB). At 2x
   * the two would differ by only 2x, too little to tell apart from garbage-collector slack.
   */
  const SIZE = 8 * CAP;
  const REQUESTS = 200;

  /** Peak resident memory of process `pid` so far (Linux: VmHWM), in bytes. */
  function peakRss(pid: number): number {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    if (kb === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
    return Number(kb) * 1024;
  }

  /**
   * A Connect unary Send over HTTP/1.1 declaring a SIZE-byte body, of which it sends nothing until
   * it has the answer (a client sending it all would race the server's close of a connection with
   * unread data, and could lose the answer to a TCP reset). Resolves with the HTTP status.
   */
  function connectOverHttp1(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/herald.v1.NotificationService/Send',
          headers: {
            'content-type': 'application/proto',
            'connect-protocol-version': '1',
            'content-length': String(SIZE),
          },
          agent: false,
        },
        (res) => {
          res.resume();
          resolve(String(res.statusCode));
          req.destroy();
        },
      );
      req.on('error', (err) => {
        if (!req.destroyed) reject(err);
      });
      req.flushHeaders();
    });
  }

  /**
   * One call on `session` sending `body` as fast as flow control allows; like a real client, it
   * cancels its side once it has the answer. Resolves with the HTTP status (Connect) or the
   * grpc-status (gRPC).
   */
  function overH2c(
    session: http2.ClientHttp2Session,
    protocol: 'connect' | 'grpc',
    body: Buffer,
  ): Promise<string> {
    return new Promise((resolve) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/herald.v1.NotificationService/Send',
        ...(protocol === 'grpc'
          ? { 'content-type': 'application/grpc', te: 'trailers' }
          : { 'content-type': 'application/proto', 'connect-protocol-version': '1' }),
      });
      let answer = '';
      const answered = (value: unknown) => {
        answer = String(value);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      stream.on('response', (headers) => {
        if (protocol === 'connect') answered(headers[':status']);
        // A gRPC error without messages comes as headers only ("trailers-only").
        else if (headers['grpc-status'] !== undefined) answered(headers['grpc-status']);
      });
      stream.on('trailers', (trailers: http2.IncomingHttpHeaders) =>
        answered(trailers['grpc-status']),
      );
      stream.on('error', () => undefined);
      stream.on('close', () => resolve(answer));
      stream.resume();
      stream.end(body);
    });
  }

  it('refuses 200 concurrent requests of 8x the cap with RESOURCE_EXHAUSTED, its memory bounded', async () => {
    const api = spawnHerald(['api'], {
      ...process.env,
      ...t.env,
      HERALD_MIGRATE_ON_START: 'false',
      HERALD_MAX_REQUEST_BYTES: String(CAP),
      // This test is about the size cap: the file's short request deadline would cancel the
      // streams still queued behind the others on a busy machine, answerless.
      HERALD_HTTP_REQUEST_TIMEOUT_MS: '60000',
    });
    const [, h2cPort, httpPort] = await api.waitFor(
      /\(h2c\) on http:\/\/127\.0\.0\.1:(\d+), .* on http:\/\/127\.0\.0\.1:(\d+)/,
    );
    const pid = api.proc.pid as number;
    // One buffer shared by every request, and one session with room for all of them queued.
    const body = Buffer.alloc(SIZE, 'x');
    const envelope = Buffer.concat([Buffer.of(0, ...u32(SIZE)), body]);
    const session = http2.connect(`http://127.0.0.1:${h2cPort}`, { maxSessionMemory: 1_024 });
    session.on('error', () => undefined);
    cleanups.add(() => {
      session.destroy();
    });
    // Warm up, so the baseline includes what serving any call costs.
    await overH2c(session, 'grpc', Buffer.of(0, 0, 0, 0, 0));
    const before = peakRss(pid);

    const third = Math.floor(REQUESTS / 3);
    const answers = await Promise.all([
      ...Array.from({ length: third }, () => connectOverHttp1(Number(httpPort))),
      ...Array.from({ length: third }, () => overH2c(session, 'connect', body)),
      ...Array.from({ length: REQUESTS - 2 * third }, () => overH2c(session, 'grpc', envelope)),
    ]);

    const growth = peakRss(pid) - before;
    // Connect sends resource_exhausted as HTTP 429; gRPC as status 8.
    const exhausted = String(Code.ResourceExhausted);
    expect(answers).toEqual([
      ...Array.from({ length: 2 * third }, () => '429'),
      ...Array.from({ length: REQUESTS - 2 * third }, () => exhausted),
    ]);
    console.log(
      `R15 memory: ${REQUESTS} requests of ${SIZE} bytes refused; the api's peak RSS grew ${(growth / 1e6).toFixed(1)} MB`,
    );
    expect(growth).toBeLessThan((REQUESTS * SIZE) / 4);
  });
});

function u32(n: number): number[] {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return [...b];
}
