/**
 * Admission of Sends: RELIABILITY R12 (a burst far over the per-user limit from many connections:
 * exactly the limit accepted in any window, RetryInfo and RateLimit headers on every answer) and
 * R11 (100 concurrent identical Sends with one idempotency key: one notification, the rest
 * replays; the same key with another body: a conflict). The window is 10 s instead of a minute so
 * the test can wait for the oldest send to leave it; the logic is the same.
 */
import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { RetryInfoSchema } from '@herald/client/gen/google/rpc/error_details_pb';
import { Channel, createHeraldClient, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const WINDOW_MS = 10_000;
const LIMIT = 10;

let t: TestHerald;
const clients: HeraldClient[] = [];

beforeAll(async () => {
  t = await startTestHerald({
    env: {
      HERALD_RATE_LIMITS: JSON.stringify({
        default: { limit: LIMIT, windowMs: WINDOW_MS },
        // R11 sends far more than 10 for one user; its own channel policy keeps it out of the way.
        channels: { in_app: { limit: 100_000, windowMs: WINDOW_MS } },
      }),
      // RPCs other than Send: 5 per second per caller, bursts of 10.
      HERALD_CALLS_PER_SECOND: '5',
    },
  });
  for (let i = 0; i < 20; i++) {
    clients.push(createHeraldClient({ baseUrl: t.h2cUrl }));
  }
});

afterAll(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

const email = (userId: string, body: string, idempotencyKey = '') => ({
  userId,
  channel: Channel.EMAIL,
  to: 'a@example.com',
  content: { subject: 's', body },
  idempotencyKey,
});

/** Sends and captures the response headers. */
async function sendCapturing(client: HeraldClient, req: ReturnType<typeof email>) {
  let headers = new Headers();
  try {
    const res = await client.send(req, { onHeader: (h) => (headers = h) });
    return { ok: true as const, id: res.id, replayed: res.replayed, headers };
  } catch (err) {
    return { ok: false as const, error: ConnectError.from(err), headers };
  }
}

async function storedCount(userId: string): Promise<number> {
  const { rows } = await t.db.pool.query<{ n: string }>(
    'select count(*) as n from notification where user_id = $1',
    [userId],
  );
  return Number(rows[0]?.n);
}

describe('per-user rate limit (R12)', () => {
  it('accepts exactly the limit from a burst over 20 connections, with RetryInfo and headers', async () => {
    const user = `burst-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        sendCapturing(clients[i % clients.length] as HeraldClient, email(user, `b${i}`)),
      ),
    );
    const accepted = results.filter((r) => r.ok);
    const refused = results.filter((r) => !r.ok);
    expect(accepted).toHaveLength(LIMIT);
    expect(refused).toHaveLength(400 - LIMIT);
    expect(await storedCount(user)).toBe(LIMIT);

    for (const r of accepted) {
      expect(r.headers.get('ratelimit-policy')).toBe(`"default";q=${LIMIT};w=10`);
      expect(r.headers.get('ratelimit')).toMatch(/^"default";r=\d+;t=\d+$/);
    }
    const remaining = accepted.map((r) =>
      Number(/r=(\d+)/.exec(r.headers.get('ratelimit') ?? '')?.[1]),
    );
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: LIMIT }, (_, i) => i));

    for (const r of refused) {
      expect(r.error?.code).toBe(Code.ResourceExhausted);
      expect(r.error?.rawMessage).toMatch(/^rate limit: at most 10 sends per 10 s for user_id /);
      const [info] = r.error?.findDetails(RetryInfoSchema) ?? [];
      const delayMs =
        Number(info?.retryDelay?.seconds ?? -1n) * 1000 + (info?.retryDelay?.nanos ?? 0) / 1e6;
      expect(delayMs).toBeGreaterThan(0);
      expect(delayMs).toBeLessThanOrEqual(WINDOW_MS);
      expect(Number(r.error?.metadata.get('retry-after'))).toBeGreaterThan(0);
      expect(r.error?.metadata.get('ratelimit')).toMatch(/^"default";r=0;t=\d+$/);
    }
  });

  it('admits the next send only once the oldest counted one has left the window', async () => {
    const user = `slide-${randomUUID()}`;
    const client = clients[0] as HeraldClient;
    for (let i = 0; i < LIMIT; i++)
      expect((await sendCapturing(client, email(user, `s${i}`))).ok).toBe(true);
    const refused = await rejection(client.send(email(user, 'over')));
    const [info] = refused.findDetails(RetryInfoSchema);
    const waitMs =
      Number(info?.retryDelay?.seconds ?? 0n) * 1000 + (info?.retryDelay?.nanos ?? 0) / 1e6;

    // Until then every attempt is refused; after it, one is accepted.
    await new Promise((r) => setTimeout(r, waitMs));
    await expect
      .poll(async () => (await sendCapturing(client, email(user, 'later'))).ok, {
        timeout: WINDOW_MS,
        interval: 100,
      })
      .toBe(true);

    // The database's own clock agrees: no window of 10 s holds more than 10 accepted sends.
    const { rows } = await t.db.pool.query<{ ms: number }>(
      `select extract(epoch from created_at) * 1000 as ms from notification
       where user_id = $1 order by created_at`,
      [user],
    );
    const times = rows.map((r) => Number(r.ms));
    expect(times).toHaveLength(LIMIT + 1);
    expect((times[LIMIT] as number) - (times[0] as number)).toBeGreaterThanOrEqual(WINDOW_MS - 50);
  });

  it('charges neither invalid requests nor idempotent replays against the limit', async () => {
    const user = `free-${randomUUID()}`;
    const client = clients[1] as HeraldClient;
    const key = randomUUID();
    const first = await client.send(email(user, 'once', key));
    for (let i = 0; i < 20; i++) {
      const again = await client.send(email(user, 'once', key));
      expect(again).toMatchObject({ id: first.id, replayed: true });
      const invalid = await rejection(client.send({ ...email(user, ''), content: {} }));
      expect(invalid.code).toBe(Code.InvalidArgument);
    }
    for (let i = 1; i < LIMIT; i++)
      expect((await sendCapturing(client, email(user, `n${i}`))).ok).toBe(true);
    expect((await rejection(client.send(email(user, 'eleventh')))).code).toBe(
      Code.ResourceExhausted,
    );
  });

  it('keeps users and tenants apart', async () => {
    const a = `apart-a-${randomUUID()}`;
    const b = `apart-b-${randomUUID()}`;
    const client = clients[2] as HeraldClient;
    for (let i = 0; i < LIMIT; i++) await client.send(email(a, `a${i}`));
    expect((await rejection(client.send(email(a, 'over')))).code).toBe(Code.ResourceExhausted);
    expect((await client.send(email(b, 'fine'))).id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('idempotency keys (R11)', () => {
  it('makes one notification of 100 concurrent identical Sends; another body with the key conflicts', async () => {
    const user = `idem-${randomUUID()}`;
    const key = `order-${randomUUID()}`;
    const req = {
      userId: user,
      channel: Channel.IN_APP,
      content: { title: 'Your order shipped', body: 'b' },
      idempotencyKey: key,
    };
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        (clients[i % clients.length] as HeraldClient).send(req),
      ),
    );
    const ids = new Set(results.map((r) => r.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    const { rows } = await t.db.pool.query<{ n: string }>(
      'select count(*) as n from notification where idempotency_key = $1',
      [key],
    );
    expect(Number(rows[0]?.n)).toBe(1);

    const conflict = await rejection(
      (clients[0] as HeraldClient).send({
        ...req,
        content: { title: 'Something else', body: 'b' },
      }),
    );
    expect(conflict.code).toBe(Code.AlreadyExists);
    expect(conflict.rawMessage).toMatch(
      /idempotency_key was already used with a different request/,
    );
  });
});

describe('calls other than Send', () => {
  it('are capped per caller, with Retry-After', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, () =>
        (clients[3] as HeraldClient).listNotifications({ pageSize: 1 }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    // The bucket holds 10; a handful more may refill while the 40 calls arrive.
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(ok).toBeLessThan(20);
    for (const r of results) {
      if (r.status === 'fulfilled') continue;
      const err = ConnectError.from(r.reason);
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/at most 5\/s per caller/);
      expect(Number(err.metadata.get('retry-after'))).toBeGreaterThan(0);
    }
  });
});

describe('with Redis unreachable', () => {
  it.each([
    ['open', 'limits each process in memory, and counts the failures'],
    ['closed', 'refuses Sends as unavailable'],
  ] as const)('%s: %s', async (mode, _what) => {
    const h = await startTestHerald({
      roles: ['api'],
      env: {
        HERALD_REDIS_URL: 'redis://127.0.0.1:1',
        HERALD_RATE_LIMIT_ON_REDIS_ERROR: mode,
        HERALD_RATE_LIMITS: JSON.stringify({ default: { limit: 3, windowMs: 60_000 } }),
      },
    });
    const client = createHeraldClient({ baseUrl: h.h2cUrl });
    try {
      const user = `no-redis-${randomUUID()}`;
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) => client.send(email(user, `r${i}`))),
      );
      const codes = results.map((r) =>
        r.status === 'fulfilled' ? 'ok' : Code[ConnectError.from(r.reason).code],
      );
      if (mode === 'open') {
        expect(codes.sort()).toEqual(['ResourceExhausted', 'ResourceExhausted', 'ok', 'ok', 'ok']);
        const ready = (await (await fetch(`${h.httpUrl}/readyz`)).json()) as {
          ready: boolean;
          counters: { rateLimitRedisFailures: number };
        };
        expect(ready.ready).toBe(true);
        expect(ready.counters.rateLimitRedisFailures).toBeGreaterThanOrEqual(5);
      } else {
        expect(codes).toEqual(Array.from({ length: 5 }, () => 'Unavailable'));
        expect(await storedCount(user)).toBe(0);
      }
    } finally {
      client.close();
      await h.stop();
    }
  });
});
