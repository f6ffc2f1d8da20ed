/**
 * Send's unhappy paths against a real api: every invalid request is rejected with
 * INVALID_ARGUMENT and a google.rpc.BadRequest naming the field, and nothing is stored; oversized
 * requests are refused before they are read; idempotency keys replay or conflict.
 */
import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  Channel,
  Priority,
  createHeraldClient,
  type HeraldClient,
  type SendRequestSchema,
} from '@herald/client';
import { BadRequestSchema } from '@herald/client/gen/google/rpc/error_details_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

type SendRequest = MessageInitShape<typeof SendRequestSchema>;

/** Small enough that a valid email with a full-size html body is over it, large enough for the rest. */
const MAX_REQUEST_BYTES = 200_000;
/** The largest seconds value a google.protobuf.Timestamp may hold (9999-12-31T23:59:59Z). */
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

let t: TestHerald;
let grpcClient: HeraldClient;
let connectClient: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald({
    roles: ['api'],
    env: { HERALD_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) },
  });
  grpcClient = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc' });
  connectClient = createHeraldClient({ baseUrl: t.httpUrl, protocol: 'connect' });
});

afterAll(async () => {
  grpcClient?.close();
  connectClient?.close();
  await t?.stop();
});

async function storedRows(): Promise<number> {
  const { rows } = await t.db.pool.query<{ n: string }>('select count(*) as n from notification');
  return Number(rows[0]?.n);
}

/** POSTs `body` as Connect JSON to Send on the HTTP/1.1 port, bypassing the client's encoder. */
function sendJson(body: unknown): Promise<Response> {
  return fetch(`${t.httpUrl}/herald.v1.NotificationService/Send`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const email: SendRequest = {
  userId: 'u-valid',
  channel: Channel.EMAIL,
  to: 'reader@example.com',
  content: { subject: 'Your order shipped', body: 'It arrives on Tuesday.' },
};
const sms: SendRequest = {
  userId: 'u-valid',
  channel: Channel.SMS,
  to: '+15550001234',
  content: { body: 'code 123456' },
};
const inApp: SendRequest = {
  userId: 'u-valid',
  channel: Channel.IN_APP,
  content: { title: 'Hello' },
};

const invalid: [string, SendRequest, string][] = [
  ['user_id is missing', { ...inApp, userId: '' }, 'user_id'],
  ['user_id is longer than 128 characters', { ...inApp, userId: 'u'.repeat(129) }, 'user_id'],
  ['user_id has a control character', { ...inApp, userId: 'u\u0007' }, 'user_id'],
  ['the channel is not defined', { ...inApp, channel: 99 as Channel }, 'channel'],
  ['the channel is CHANNEL_UNSPECIFIED', { ...inApp, channel: Channel.UNSPECIFIED }, 'channel'],
  ['the priority is not defined', { ...inApp, priority: 42 as Priority }, 'priority'],
  ['content is missing', { userId: 'u', channel: Channel.IN_APP }, 'content'],
  ['the sms body is empty', { ...sms, content: { body: '' } }, 'content.body'],
  [
    'the sms body is longer than 1,600 characters',
    { ...sms, content: { body: 'x'.repeat(1_601) } },
    'content.body',
  ],
  ['an email has no subject', { ...email, content: { body: 'b' } }, 'content.subject'],
  ['an email has neither body nor html', { ...email, content: { subject: 's' } }, 'content.body'],
  [
    'the subject is 256 characters',
    { ...email, content: { subject: 's'.repeat(256), body: 'b' } },
    'content.subject',
  ],
  [
    'the subject has a line break',
    { ...email, content: { subject: 'a\r\nBcc: x', body: 'b' } },
    'content.subject',
  ],
  [
    'the body is longer than 65,536 characters',
    { ...email, content: { subject: 's', body: 'b'.repeat(65_537) } },
    'content.body',
  ],
  [
    'html is set for in_app',
    { ...inApp, content: { title: 't', html: '<p>x</p>' } },
    'content.html',
  ],
  [
    'push has neither title nor body',
    { userId: 'u', channel: Channel.PUSH, content: { data: { a: '1' } } },
    'content.body',
  ],
  [
    'a webhook has neither body nor data',
    { userId: 'u', channel: Channel.WEBHOOK, content: { title: 't' } },
    'content.body',
  ],
  [
    'content.data has more than 64 entries',
    { ...inApp, content: { title: 't', data: entries(65) } },
    'content.data',
  ],
  ['to is not an email address for email', { ...email, to: 'not-an-email' }, 'to'],
  ['to is not an E.164 number for sms', { ...sms, to: '0151 1234567' }, 'to'],
  [
    'to has whitespace for push',
    { userId: 'u', channel: Channel.PUSH, content: { title: 't' }, to: 'tok en' },
    'to',
  ],
  [
    'to is not an http URL for webhook',
    { userId: 'u', channel: Channel.WEBHOOK, content: { body: 'b' }, to: 'ftp://x.example' },
    'to',
  ],
  ['to is set for in_app', { ...inApp, to: 'someone@example.com' }, 'to'],
  [
    'send_at is beyond year 9999',
    { ...inApp, sendAt: { seconds: MAX_TIMESTAMP_SECONDS + 1_000n, nanos: 0 } },
    'send_at',
  ],
  [
    'send_at has negative nanos',
    { ...inApp, sendAt: { seconds: 1_700_000_000n, nanos: -1 } },
    'send_at',
  ],
  [
    'send_at is more than 366 days ahead',
    {
      ...inApp,
      sendAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 367 * 86_400), nanos: 0 },
    },
    'send_at',
  ],
  ['metadata has more than 32 entries', { ...inApp, metadata: entries(33) }, 'metadata'],
  [
    'a metadata value is longer than 512 characters',
    { ...inApp, metadata: { k: 'v'.repeat(513) } },
    'metadata["k"]',
  ],
  [
    'the category has upper-case letters and spaces',
    { ...inApp, category: 'Order Updates' },
    'category',
  ],
  ['the category starts with a dot', { ...inApp, category: '.orders' }, 'category'],
  [
    'idempotency_key is longer than 128 characters',
    { ...inApp, idempotencyKey: 'k'.repeat(129) },
    'idempotency_key',
  ],
  ['idempotency_key is not ASCII', { ...inApp, idempotencyKey: 'clé' }, 'idempotency_key'],
  [
    'correlation_id is longer than 128 characters',
    { ...inApp, correlationId: 'c'.repeat(129) },
    'correlation_id',
  ],
  // PostgreSQL cannot store U+0000 in text or jsonb.
  ['the title contains NUL', { ...inApp, content: { title: 'a\u0000b' } }, 'content.title'],
  ['a metadata value contains NUL', { ...inApp, metadata: { k: '\u0000' } }, 'metadata["k"]'],
  [
    'to contains NUL for push',
    { userId: 'u', channel: Channel.PUSH, content: { title: 't' }, to: 'tok\u0000' },
    'to',
  ],
];

function entries(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
}

describe('Send', () => {
  it.each(invalid)(
    'fails with INVALID_ARGUMENT naming the field and stores nothing when %s',
    async (_, request, field) => {
      const before = await storedRows();

      const err = await rejection(grpcClient.send(request));

      expect(err.code).toBe(Code.InvalidArgument);
      expect(violatedFields(err)).toContain(field);
      expect(await storedRows()).toBe(before);
    },
  );

  it('stores the valid requests when one sent together with them is rejected', async () => {
    const userId = `u-${randomUUID()}`;
    const before = await storedRows();

    // Concurrent Sends share one multi-row INSERT: a row PostgreSQL refuses must never get there.
    const results = await Promise.allSettled([
      ...Array.from({ length: 5 }, () => grpcClient.send({ ...inApp, userId })),
      grpcClient.send({ ...inApp, userId, content: { title: 'nul\u0000' } }),
      ...Array.from({ length: 5 }, () => grpcClient.send({ ...inApp, userId })),
    ]);

    const fulfilled = Array.from({ length: 5 }, () => 'fulfilled');
    expect(results.map((r) => r.status)).toEqual([...fulfilled, 'rejected', ...fulfilled]);
    const failed = results[5];
    expect(failed?.status === 'rejected' && ConnectError.from(failed.reason).code).toBe(
      Code.InvalidArgument,
    );
    expect(await storedRows()).toBe(before + 10);
  });

  it('names every bad field in one BadRequest when several fields are bad', async () => {
    const before = await storedRows();

    const err = await rejection(
      connectClient.send({
        userId: '',
        channel: Channel.SMS,
        content: { body: '' },
        to: '12',
        category: 'A B',
        idempotencyKey: 'k'.repeat(200),
      }),
    );

    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err).sort()).toEqual(
      ['user_id', 'content.body', 'to', 'category', 'idempotency_key'].sort(),
    );
    const [detail] = err.findDetails(BadRequestSchema);
    expect(detail?.fieldViolations.every((v) => v.description !== '')).toBe(true);
    expect(await storedRows()).toBe(before);
  });

  // The JSON decoder (protobuf-es) rejects the request before Herald sees it; for a
  // google.protobuf.Timestamp its message names the type, not the field.
  it('fails with HTTP 400 invalid_argument naming the Timestamp when Connect JSON has an unparseable send_at', async () => {
    const before = await storedRows();

    const res = await sendJson({
      userId: 'u-json',
      channel: 'CHANNEL_IN_APP',
      content: { title: 't' },
      sendAt: 'next tuesday',
    });
    const body = (await res.json()) as { code?: string; message?: string };

    expect(res.status).toBe(400);
    expect(body.code).toBe('invalid_argument');
    expect(body.message).toContain('google.protobuf.Timestamp');
    expect(body.message).toContain('RFC 3339');
    expect(await storedRows()).toBe(before);
  });

  it('fails with HTTP 400 and a BadRequest naming send_at when Connect JSON sends a time too far ahead', async () => {
    const before = await storedRows();
    const farAhead = new Date(Date.now() + 400 * 86_400_000).toISOString();

    const res = await sendJson({
      userId: 'u-json',
      channel: 'CHANNEL_IN_APP',
      content: { title: 't' },
      sendAt: farAhead,
    });
    const body = (await res.json()) as {
      code?: string;
      message?: string;
      details?: { type: string; debug?: { fieldViolations?: { field: string }[] } }[];
    };

    expect(res.status).toBe(400);
    expect(body.code).toBe('invalid_argument');
    expect(body.message).toContain('send_at');
    expect(body.details?.map((d) => d.type)).toEqual(['google.rpc.BadRequest']);
    expect(await storedRows()).toBe(before);
  });

  // Read strictly (protobuf's JSON mapping; Connect would ignore what it does not know): a value
  // or key the contract does not have is refused by name, never taken as the field's default.
  it.each([
    [
      'an unknown channel',
      { channel: 'CHANNEL_FAX' },
      'enum herald.v1.Channel from JSON: "CHANNEL_FAX"',
    ],
    [
      'a channel by its short name',
      { channel: 'email' },
      'enum herald.v1.Channel from JSON: "email"',
    ],
    ['an unknown priority', { priority: 'HIGH' }, 'enum herald.v1.Priority from JSON: "HIGH"'],
    ['a misspelt key', { chanel: 'CHANNEL_IN_APP' }, 'key "chanel" is unknown'],
  ])(
    'fails with HTTP 400 invalid_argument naming it when Connect JSON has %s',
    async (_, bad, named) => {
      const before = await storedRows();

      const res = await sendJson({
        userId: 'u-json',
        channel: 'CHANNEL_IN_APP',
        content: { title: 't' },
        ...bad,
      });
      const body = (await res.json()) as { code?: string; message?: string };

      expect(res.status).toBe(400);
      expect(body.code).toBe('invalid_argument');
      expect(body.message).toContain(named);
      expect(await storedRows()).toBe(before);
    },
  );

  describe('deadline', () => {
    it('fails with INVALID_ARGUMENT and stores nothing when the client deadline is over the cap', async () => {
      const before = await storedRows();

      // HERALD_MAX_TIMEOUT_MS defaults to 30 s.
      const err = await rejection(
        grpcClient.send({ ...email, userId: 'u-slow' }, { timeoutMs: 60_000 }),
      );

      expect(err.code).toBe(Code.InvalidArgument);
      expect(await storedRows()).toBe(before);
    });

    it('accepts a request whose deadline is within the cap', async () => {
      const res = await grpcClient.send({ ...email, userId: 'u-in-time' }, { timeoutMs: 10_000 });

      expect(res.id).not.toBe('');
    });
  });

  describe('request size', () => {
    // A valid email whose html is at its 262,144-character limit: over the server's byte limit.
    const big: SendRequest = {
      ...email,
      userId: 'u-big',
      content: { subject: 's', body: 'b', html: `<p>${'x'.repeat(262_137)}</p>` },
    };

    it('fails with RESOURCE_EXHAUSTED and stores nothing when the request is over max request bytes (gRPC)', async () => {
      const before = await storedRows();

      const err = await rejection(grpcClient.send(big));

      expect(err.code).toBe(Code.ResourceExhausted);
      expect(await storedRows()).toBe(before);
    });

    it('fails with RESOURCE_EXHAUSTED and stores nothing when the request is over max request bytes (Connect)', async () => {
      const before = await storedRows();

      const err = await rejection(connectClient.send(big));

      expect(err.code).toBe(Code.ResourceExhausted);
      expect(await storedRows()).toBe(before);
    });

    it('accepts a request just under max request bytes', async () => {
      const before = await storedRows();

      const res = await grpcClient.send({
        ...email,
        userId: 'u-almost-big',
        content: { subject: 's', body: 'b', html: 'x'.repeat(MAX_REQUEST_BYTES - 1_000) },
      });

      expect(res.id).not.toBe('');
      expect(await storedRows()).toBe(before + 1);
    });
  });

  describe('idempotency_key', () => {
    it('returns the same id with replayed set and stores one row when the same request is sent twice', async () => {
      const before = await storedRows();
      const request: SendRequest = {
        ...inApp,
        userId: `u-${randomUUID()}`,
        idempotencyKey: randomUUID(),
      };

      const first = await grpcClient.send(request);
      const second = await connectClient.send(request);

      expect(first.replayed).toBe(false);
      expect(second).toMatchObject({ id: first.id, replayed: true, status: first.status });
      expect(second.createdAt).toEqual(first.createdAt);
      expect(await storedRows()).toBe(before + 1);
    });

    it('treats map order as irrelevant when the same request is replayed', async () => {
      const key = randomUUID();
      const first = await grpcClient.send({
        ...inApp,
        idempotencyKey: key,
        metadata: { a: '1', b: '2' },
      });

      const second = await grpcClient.send({
        ...inApp,
        idempotencyKey: key,
        metadata: { b: '2', a: '1' },
      });

      expect(second).toMatchObject({ id: first.id, replayed: true });
    });

    it('fails with ALREADY_EXISTS and keeps the first row when the key is reused with a different body', async () => {
      const key = randomUUID();
      const first = await grpcClient.send({ ...inApp, idempotencyKey: key });
      const before = await storedRows();

      const err = await rejection(
        grpcClient.send({ ...inApp, content: { title: 'Something else' }, idempotencyKey: key }),
      );

      expect(err.code).toBe(Code.AlreadyExists);
      expect(await storedRows()).toBe(before);
      const { rows } = await t.db.pool.query<{ id: string; content: { title: string } }>(
        'select id, content from notification where idempotency_key = $1',
        [key],
      );
      expect(rows).toEqual([{ id: first.id, content: { title: 'Hello' } }]);
    });

    it('stores one row when the same keyed request races with itself', async () => {
      const request: SendRequest = {
        ...inApp,
        userId: `u-${randomUUID()}`,
        idempotencyKey: randomUUID(),
      };

      const results = await Promise.all(Array.from({ length: 8 }, () => grpcClient.send(request)));

      expect(new Set(results.map((r) => r.id)).size).toBe(1);
      expect(results.filter((r) => !r.replayed)).toHaveLength(1);
      const { rows } = await t.db.pool.query('select id from notification where user_id = $1', [
        request.userId,
      ]);
      expect(rows).toHaveLength(1);
    });

    it('creates separate notifications when no key is given', async () => {
      const userId = `u-${randomUUID()}`;

      const a = await grpcClient.send({ ...inApp, userId });
      const b = await grpcClient.send({ ...inApp, userId });

      expect(a.id).not.toBe(b.id);
      expect([a.replayed, b.replayed]).toEqual([false, false]);
    });
  });

  it('accepts and stores the request when every field is valid', async () => {
    const before = await storedRows();

    const res = await grpcClient.send({
      userId: `u-${randomUUID()}`,
      channel: Channel.EMAIL,
      to: 'ada@example.com',
      content: { subject: 's', body: 'b', data: { order: '1234' } },
      priority: Priority.HIGH,
      category: 'orders.shipping',
      metadata: { order: '1234' },
      correlationId: 'trace-1',
    });

    expect(res.replayed).toBe(false);
    expect(await storedRows()).toBe(before + 1);
    const { rows } = await t.db.pool.query<Record<string, unknown>>(
      'select "to", priority, category, metadata, correlation_id from notification where id = $1',
      [res.id],
    );
    expect(rows).toEqual([
      {
        to: 'ada@example.com',
        priority: 'high',
        category: 'orders.shipping',
        metadata: { order: '1234' },
        correlation_id: 'trace-1',
      },
    ]);
  });
});
