/**
 * SendBatch: 1,000 items with 3 invalid ones → 997 accepted and 3 errors naming `items[i].<field>`,
 * and the 997 delivered; a replayed batch replays every item and stores nothing new; each item
 * gets its own Send's error (no address, a reused key) and its own user's rate limit; too many or
 * no items → INVALID_ARGUMENT naming `items`; the GraphQL sendNotifications mutation.
 */
import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { Redis } from 'ioredis';
import {
  Channel,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type SendBatchResponse,
  type SendRequestSchema,
} from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { untilDelivered } from '../support/postgres.js';

/** A SendRequest as a plain object (not a created message), so items can be spread. */
type Item = Extract<MessageInitShape<typeof SendRequestSchema>, { $typeName?: undefined }>;

let t: TestHerald;
let grpc: HeraldClient;
/** Connect JSON over HTTP/1.1: the largest encoding of a batch, under the default request cap. */
let json: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald({ gateway: true });
  grpc = createHeraldClient({ baseUrl: t.h2cUrl });
  json = createHeraldClient({ baseUrl: t.httpUrl, protocol: 'connect' });
});

afterAll(async () => {
  grpc?.close();
  json?.close();
  await t?.stop();
});

/** A typical item: in-app and email (log provider) alternating, over 50 users of the run. */
function item(run: string, i: number, idempotencyKey = ''): Item {
  const userId = `${run}-u${i % 50}`;
  return i % 2 === 0
    ? {
        userId,
        channel: Channel.IN_APP,
        content: { title: 'Your order has shipped', body: `Order #${100_000 + i} is on its way.` },
        category: 'orders.shipping',
        idempotencyKey,
      }
    : {
        userId,
        channel: Channel.EMAIL,
        to: `customer${i}@example.com`,
        content: {
          subject: 'Your order has shipped',
          body: `Hi, order #${100_000 + i} has shipped and arrives on Tuesday. Track it in your account.`,
        },
        category: 'orders.shipping',
        metadata: { orderId: String(100_000 + i) },
        idempotencyKey,
      };
}

/** The three invalid items, by position, and the violation each must be reported with. */
const INVALID: Record<number, { patch: Partial<Item>; field: string; rule: RegExp }> = {
  17: { patch: { userId: '' }, field: 'user_id', rule: /^is required$/ },
  501: { patch: { to: 'not-an-email' }, field: 'to', rule: /^must be an email address/ },
  998: { patch: { channel: Channel.UNSPECIFIED }, field: 'channel', rule: /^is required/ },
};

/** 1,000 items of a run, the INVALID ones at their positions; keyed when `keyed`. */
function batchWithInvalid(run: string, keyed: boolean): Item[] {
  return Array.from({ length: 1_000 }, (_, i) => ({
    ...item(run, i, keyed ? `${run}-${i}` : ''),
    ...INVALID[i]?.patch,
  }));
}

function acceptedIds(res: SendBatchResponse): string[] {
  return res.results.flatMap((r) => (r.result.case === 'accepted' ? [r.result.value.id] : []));
}

async function storedForRun(run: string): Promise<number> {
  const { rows } = await t.db.pool.query<{ n: string }>(
    'select count(*) as n from notification where user_id like $1',
    [`${run}-%`],
  );
  return Number(rows[0]?.n);
}

/** Asserts the 3 invalid positions failed with exactly their violation and the rest were accepted. */
function expectPreciseErrors(res: SendBatchResponse) {
  expect(res.results).toHaveLength(1_000);
  expect(res.acceptedCount).toBe(997);
  expect(res.failedCount).toBe(3);
  res.results.forEach((r, i) => {
    const invalid = INVALID[i];
    if (invalid === undefined) {
      expect(r.result.case, `item ${i}`).toBe('accepted');
      return;
    }
    expect(r.result.case, `item ${i}`).toBe('error');
    if (r.result.case !== 'error') return;
    const error = r.result.value;
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.fieldViolations.map((v) => v.field)).toEqual([`items[${i}].${invalid.field}`]);
    expect(error.fieldViolations[0]?.description).toMatch(invalid.rule);
    expect(error.message).toBe(
      `items[${i}].${invalid.field}: ${error.fieldViolations[0]?.description}`,
    );
  });
}

describe('SendBatch', () => {
  it('accepts 997 and reports 3 precise errors when 3 of 1,000 items are invalid, and delivers the 997', async () => {
    const run = `b-${randomUUID()}`;
    const res = await grpc.sendBatch({ items: batchWithInvalid(run, false) });
    expectPreciseErrors(res);
    for (const r of res.results) {
      if (r.result.case === 'accepted') {
        expect(r.result.value.status).toBe(NotificationStatus.PENDING);
        expect(r.result.value.replayed).toBe(false);
      }
    }
    const ids = acceptedIds(res);
    expect(new Set(ids).size).toBe(997);
    expect(await storedForRun(run)).toBe(997);

    expect(ids).toHaveLength(997);
    await untilDelivered(t.db.pool, ids, { timeout: 60_000, interval: 200 });
    // The email items went through the log provider, once each.
    const emailIds = res.results.flatMap((r, i) =>
      r.result.case === 'accepted' && i % 2 === 1 ? [r.result.value.id] : [],
    );
    const delivered = t.deliveries();
    expect(emailIds.filter((id) => !delivered.includes(id))).toEqual([]);
    expect(delivered.filter((id) => emailIds.includes(id))).toHaveLength(emailIds.length);
  });

  it('replays every item and stores nothing new when the same keyed batch is sent again (Connect JSON)', async () => {
    const run = `r-${randomUUID()}`;
    const items = batchWithInvalid(run, true);
    const first = await json.sendBatch({ items });
    expectPreciseErrors(first);
    expect(await storedForRun(run)).toBe(997);

    const again = await json.sendBatch({ items });
    expectPreciseErrors(again);
    for (const r of again.results) {
      if (r.result.case === 'accepted') expect(r.result.value.replayed).toBe(true);
    }
    expect(acceptedIds(again)).toEqual(acceptedIds(first));
    expect(await storedForRun(run)).toBe(997);
  });

  it("reports each item's own Send error when items lack an address or reuse a key", async () => {
    const run = `e-${randomUUID()}`;
    const stored = await grpc.send(item(run, 0, `${run}-stored`));
    const pair = `${run}-pair`;
    const res = await grpc.sendBatch({
      items: [
        // The stored notification's key with its request: a replay.
        item(run, 0, `${run}-stored`),
        // Its key with another request.
        { ...item(run, 0, `${run}-stored`), content: { title: 'Something else' } },
        // One new request twice under one key: one notification, the other item replays it.
        item(run, 1, pair),
        item(run, 1, pair),
        // No `to` and no stored recipient.
        { userId: `${run}-nobody`, channel: Channel.SMS, content: { body: 'hi' } },
      ],
    });
    const [replay, conflict, a, b, noAddress] = res.results.map((r) => r.result);
    expect(replay).toMatchObject({ case: 'accepted', value: { id: stored.id, replayed: true } });
    expect(conflict).toMatchObject({ case: 'error', value: { code: 'ALREADY_EXISTS' } });
    expect(conflict?.case === 'error' && conflict.value.message).toMatch(/idempotency_key/);
    expect(a?.case).toBe('accepted');
    expect(b?.case).toBe('accepted');
    if (a?.case !== 'accepted' || b?.case !== 'accepted') return;
    expect(b.value.id).toBe(a.value.id);
    expect([a.value.replayed, b.value.replayed].sort()).toEqual([false, true]);
    expect(noAddress).toMatchObject({ case: 'error', value: { code: 'FAILED_PRECONDITION' } });
    expect(noAddress?.case === 'error' && noAddress.value.message).toMatch(/phone/);
    expect(res.acceptedCount).toBe(3);
    expect(res.failedCount).toBe(2);
    expect(await storedForRun(run)).toBe(2);
  });

  it('refuses the whole call, naming items, when there are 1,001 items or none', async () => {
    const run = `n-${randomUUID()}`;
    const tooMany = await rejection(
      grpc.sendBatch({ items: Array.from({ length: 1_001 }, (_, i) => item(run, i)) }),
    );
    expect(tooMany.code).toBe(Code.InvalidArgument);
    expect(violatedFields(tooMany)).toEqual(['items']);
    expect(tooMany.rawMessage).toBe('items: must hold 1 to 1000 items (got 1001)');

    const none = await rejection(grpc.sendBatch({ items: [] }));
    expect(none.code).toBe(Code.InvalidArgument);
    expect(violatedFields(none)).toEqual(['items']);
    expect(await storedForRun(run)).toBe(0);
  });
});

describe('sendNotifications (GraphQL)', () => {
  async function graphql(query: string, variables: Record<string, unknown>) {
    const res = await t.gatewayFetch!(
      new Request(t.gatewayUrl!, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables }),
      }),
    );
    return (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  }

  it('answers one result per input, in order, with the api’s errors coded as GraphQL codes', async () => {
    const run = `g-${randomUUID()}`;
    const input = (userId: string) => ({
      userId,
      channel: 'IN_APP',
      content: { title: 'Hello' },
      idempotencyKey: `${userId}-k`,
    });
    const body = await graphql(
      `
        mutation Send($inputs: [SendNotificationInput!]!) {
          sendNotifications(inputs: $inputs) {
            acceptedCount
            failedCount
            results {
              id
              status
              replayed
              error {
                code
                message
                fieldViolations {
                  field
                  description
                }
              }
            }
          }
        }
      `,
      { inputs: [input(`${run}-a`), input(''), input(`${run}-b`)] },
    );
    expect(body.errors).toBeUndefined();
    expect(body.data?.sendNotifications).toMatchObject({
      acceptedCount: 2,
      failedCount: 1,
      results: [
        { status: 'PENDING', replayed: false, error: null },
        {
          id: null,
          error: {
            code: 'BAD_USER_INPUT',
            message: 'items[1].user_id: is required',
            fieldViolations: [{ field: 'items[1].user_id', description: 'is required' }],
          },
        },
        { status: 'PENDING', replayed: false, error: null },
      ],
    });
    expect(await storedForRun(run)).toBe(2);

    // The single-send mutation shares the input mapping: the same input replays the first item.
    const single = await graphql(
      `
        mutation One($input: SendNotificationInput!) {
          sendNotification(input: $input) {
            replayed
            notification {
              id
            }
          }
        }
      `,
      { input: input(`${run}-a`) },
    );
    expect(single.errors).toBeUndefined();
    const results = (body.data?.sendNotifications as { results: { id: string }[] }).results;
    expect(single.data?.sendNotification).toEqual({
      replayed: true,
      notification: { id: results[0]?.id },
    });
  });

  it('fails only the input whose sendAt is not a date, naming items[i].send_at, and sends the others', async () => {
    const run = `g-${randomUUID()}`;
    const input = (userId: string, sendAt?: string) => ({
      userId,
      channel: 'IN_APP',
      content: { title: 'Hello' },
      ...(sendAt === undefined ? {} : { sendAt }),
    });
    const body = await graphql(
      `
        mutation Send($inputs: [SendNotificationInput!]!) {
          sendNotifications(inputs: $inputs) {
            acceptedCount
            failedCount
            results {
              id
              status
              error {
                code
                message
                fieldViolations {
                  field
                  description
                }
                retryAfterMs
              }
            }
          }
        }
      `,
      {
        inputs: [
          input(`${run}-a`),
          input(`${run}-b`, 'next tuesday'),
          input(''),
          input(`${run}-c`, '2026-01-01T00:00:00Z'),
        ],
      },
    );
    expect(body.errors).toBeUndefined();
    expect(body.data?.sendNotifications).toMatchObject({
      acceptedCount: 2,
      failedCount: 2,
      results: [
        { status: 'PENDING', error: null },
        {
          id: null,
          status: null,
          error: {
            code: 'BAD_USER_INPUT',
            message:
              'items[1].send_at: must be an ISO 8601 date-time with a time zone, e.g. 2026-11-21T12:00:00Z',
            fieldViolations: [
              {
                field: 'items[1].send_at',
                description:
                  'must be an ISO 8601 date-time with a time zone, e.g. 2026-11-21T12:00:00Z',
              },
            ],
            retryAfterMs: null,
          },
        },
        // The api still names the inputs after a bad one by their own index.
        {
          id: null,
          error: {
            code: 'BAD_USER_INPUT',
            fieldViolations: [{ field: 'items[2].user_id', description: 'is required' }],
          },
        },
        { status: 'PENDING', error: null },
      ],
    });
    expect(await storedForRun(run)).toBe(2);
  });
});

describe('SendBatch rate limits', () => {
  let limited: TestHerald;
  let client: HeraldClient;

  beforeAll(async () => {
    limited = await startTestHerald({
      roles: ['api'],
      env: { HERALD_RATE_LIMITS: JSON.stringify({ default: { limit: 3, windowMs: 60_000 } }) },
    });
    client = createHeraldClient({ baseUrl: limited.h2cUrl });
  });

  afterAll(async () => {
    client?.close();
    await limited?.stop();
  });

  /**
   * Until the limiter is talking to Redis: a send it decides in-process while still connecting
   * (fail-open) would be counted apart from the batch's.
   */
  async function limiterOnRedis() {
    const redis = new Redis(limited.config.rateLimit.redisUrl);
    try {
      await expect
        .poll(
          async () => {
            await client.send({
              userId: `warm-up-${randomUUID()}`,
              channel: Channel.IN_APP,
              content: { title: 'warm-up' },
            });
            return (await redis.keys(`${limited.config.rateLimit.redisPrefix}:*`)).length;
          },
          { timeout: 10_000, interval: 100 },
        )
        .toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  }

  it("refuses only the items over their user's limit, with a retry delay, while other users' items pass", async () => {
    await limiterOnRedis();
    const run = `l-${randomUUID()}`;
    const users = [...Array<string>(6).fill('busy'), 'calm-1', 'calm-1', 'calm-2', 'calm-2'];
    const res = await client.sendBatch({
      items: users.map((u, i) => ({
        userId: `${run}-${u}`,
        channel: Channel.IN_APP,
        content: { title: `t${i}` },
      })),
    });
    const outcome = (u: string) =>
      res.results.filter((_, i) => users[i] === u).map((r) => r.result);
    const busy = outcome('busy');
    expect(busy.filter((r) => r.case === 'accepted')).toHaveLength(3);
    const refused = busy.filter((r) => r.case === 'error');
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(r.value.code).toBe('RESOURCE_EXHAUSTED');
      expect(r.value.message).toMatch(/rate limit: at most 3 sends per 60 s/);
      const delayMs =
        Number(r.value.retryDelay?.seconds ?? 0n) * 1000 + (r.value.retryDelay?.nanos ?? 0) / 1e6;
      expect(delayMs).toBeGreaterThan(0);
      expect(delayMs).toBeLessThanOrEqual(60_000);
    }
    for (const u of ['calm-1', 'calm-2']) {
      expect(outcome(u).every((r) => r.case === 'accepted')).toBe(true);
    }
    const { rows } = await limited.db.pool.query<{ user_id: string; n: string }>(
      'select user_id, count(*) as n from notification where user_id like $1 group by user_id order by user_id',
      [`${run}-%`],
    );
    expect(rows.map((r) => [r.user_id, Number(r.n)])).toEqual([
      [`${run}-busy`, 3],
      [`${run}-calm-1`, 2],
      [`${run}-calm-2`, 2],
    ]);
  });
});
