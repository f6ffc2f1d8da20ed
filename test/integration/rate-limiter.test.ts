/**
 * The Redis rate limiter against a real Redis: exact limits under concurrency from several
 * clients, the sliding window measured by the server's own clock, release, policies' windows, key
 * isolation, and what happens when Redis is unreachable or silent.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/domain/errors.js';
import type { Logger } from '../../src/domain/ports.js';
import {
  rateLimitPolicyConfig,
  type RateLimitDecision,
  type RateLimiter,
  type RateLimitKey,
} from '../../src/domain/rate-limit-policy.js';
import {
  createRedisRateLimiter,
  type RedisRateLimiterDeps,
} from '../../src/infra/redis/rate-limiter.js';
import { createCleanups } from '../support/cleanups.js';

/** The server tests use; `HERALD_TEST_REDIS_URL` overrides. */
const REDIS_URL = process.env.HERALD_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const cleanups = createCleanups();
afterEach(() => cleanups.runAll());

/** A connected client, configured as the limiter's doc comment recommends. */
async function connect(options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis(REDIS_URL, {
    enableOfflineQueue: false,
    lazyConnect: true,
    ...options,
  });
  cleanups.add(() => redis.disconnect());
  await redis.connect();
  return redis;
}

/** A client of a port nothing listens on: every command fails at once. */
function unreachable(): Redis {
  const redis = new Redis({
    host: '127.0.0.1',
    port: 1,
    enableOfflineQueue: false,
    retryStrategy: () => 200,
  });
  // Connection errors are the point here; without a listener ioredis reports each one.
  redis.on('error', () => undefined);
  cleanups.add(() => redis.disconnect());
  return redis;
}

/** A key prefix of this test's own, whose keys are deleted afterwards. */
async function testPrefix(): Promise<{ prefix: string; admin: Redis }> {
  const admin = await connect();
  const prefix = `herald:test:rl:${randomBytes(6).toString('hex')}`;
  cleanups.add(async () => {
    const keys = await admin.keys(`${prefix}:*`);
    if (keys.length > 0) await admin.del(...keys);
  });
  return { prefix, admin };
}

interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (obj: object, msg?: string) => {
    lines.push({ level, obj, msg });
  };
  return {
    lines,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}

function limiterOf(
  deps: Partial<RedisRateLimiterDeps> & Pick<RedisRateLimiterDeps, 'redis'>,
): RateLimiter {
  const limiter = createRedisRateLimiter({
    policies: rateLimitPolicyConfig.parse({}),
    onRedisError: 'closed',
    logger: recordingLogger().logger,
    ...deps,
  });
  cleanups.add(() => limiter.close());
  return limiter;
}

function policies(input: unknown) {
  return rateLimitPolicyConfig.parse(input);
}

/** The Redis server's clock in microseconds: the clock the limiter's script uses. */
async function serverTime(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1_000_000 + Number(micros);
}

/** The scores (µs) of the one window under `prefix`, oldest first. */
async function windowScores(admin: Redis, prefix: string): Promise<number[]> {
  const keys = await admin.keys(`${prefix}:*`);
  expect(keys).toHaveLength(1);
  const flat = await admin.zrange(keys[0] ?? '', 0, '-1', 'WITHSCORES');
  return flat.filter((_, i) => i % 2 === 1).map(Number);
}

const alice: RateLimitKey = { tenantId: 't1', userId: 'alice', channel: 'email' };

function countAllowed(decisions: readonly RateLimitDecision[]): number {
  return decisions.filter((d) => d.allowed).length;
}

describe('RedisRateLimiter', () => {
  it('allows exactly the limit when 400 takes for one user race', async () => {
    const { prefix, admin } = await testPrefix();
    const redis = await connect();
    const limiter = limiterOf({
      redis,
      keyPrefix: prefix,
      policies: policies({ default: { limit: 10, windowMs: 60_000 } }),
    });
    const decisions = await Promise.all(Array.from({ length: 400 }, () => limiter.take(alice)));
    expect(countAllowed(decisions)).toBe(10);
    for (const d of decisions.filter((d) => !d.allowed)) {
      expect(d).toMatchObject({ remaining: 0, policy: 'default', degraded: false });
      expect(d.retryAfterMs).toBeGreaterThan(0);
    }
    expect(await windowScores(admin, prefix)).toHaveLength(10);
    expect(limiter.redisFailures).toBe(0);
  });

  it('allows exactly the limit when two processes share Redis', async () => {
    const { prefix, admin } = await testPrefix();
    const policy = policies({ default: { limit: 10, windowMs: 60_000 } });
    // Two clients, two limiters: as two Herald processes would be.
    const a = limiterOf({ redis: await connect(), keyPrefix: prefix, policies: policy });
    const b = limiterOf({ redis: await connect(), keyPrefix: prefix, policies: policy });
    const decisions = await Promise.all(
      Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a : b).take(alice)),
    );
    expect(countAllowed(decisions)).toBe(10);
    expect(await windowScores(admin, prefix)).toHaveLength(10);
  });

  it('never accepts more than the limit in any window under sustained load from two processes', async () => {
    const { prefix } = await testPrefix();
    const limit = 5;
    const windowMs = 1_000;
    const policy = policies({ default: { limit, windowMs } });
    const limiters = [
      limiterOf({ redis: await connect(), keyPrefix: prefix, policies: policy }),
      limiterOf({ redis: await connect(), keyPrefix: prefix, policies: policy }),
    ];
    // Every accepted send happened somewhere between its call and its answer.
    const accepted: { from: number; to: number }[] = [];
    const until = performance.now() + 2.5 * windowMs;
    const hammer = async (limiter: RateLimiter) => {
      while (performance.now() < until) {
        const from = performance.now();
        const decision = await limiter.take(alice);
        if (decision.allowed) accepted.push({ from, to: performance.now() });
      }
    };
    await Promise.all(limiters.flatMap((l) => Array.from({ length: 8 }, () => hammer(l))));

    // The window slid: more than one window's worth got through over the run.
    expect(accepted.length).toBeGreaterThan(limit);
    // Sends known to fall inside one window, starting at any accepted send, never exceed the
    // limit. (Windows are half-open: a send exactly one window after another is in the next.)
    for (const start of accepted) {
      const inside = accepted.filter((a) => a.from >= start.from && a.to < start.from + windowMs);
      expect(inside.length).toBeLessThanOrEqual(limit);
    }
  });

  it('admits the next send only once the oldest has left the window', async () => {
    const { prefix, admin } = await testPrefix();
    const windowMs = 1_500;
    const limiter = limiterOf({
      redis: await connect(),
      keyPrefix: prefix,
      policies: policies({ default: { limit: 3, windowMs } }),
    });
    // Sends a third of a window apart (by the server's clock), so the oldest leaves well before
    // the others.
    const sent: number[] = [];
    for (let i = 0; i < 3; i++) {
      const previous = sent.at(-1);
      if (previous !== undefined) {
        await expect
          .poll(() => serverTime(admin), { timeout: 5_000, interval: 20 })
          .toBeGreaterThanOrEqual(previous + (windowMs * 1000) / 3);
      }
      expect((await limiter.take(alice)).allowed).toBe(true);
      sent.push(...(await windowScores(admin, prefix)).slice(i));
    }
    const leavesAt = sent.map((score) => score + windowMs * 1000);
    const oldestLeavesAt = leavesAt[0] ?? 0;

    // Each probe is bracketed by the server's clock, so whether the oldest had left the window
    // when the script ran is known without trusting this process's timers.
    const probes: { before: number; after: number; decision: RateLimitDecision }[] = [];
    const probe = async () => {
      const before = await serverTime(admin);
      const decision = await limiter.take(alice);
      const after = await serverTime(admin);
      probes.push({ before, after, decision });
      return decision;
    };
    const rejected = await probe();
    expect(rejected.allowed).toBe(false);
    expect(rejected.retryAfterMs).toBeGreaterThan(0);
    expect(rejected.retryAfterMs).toBeLessThanOrEqual(windowMs);

    await sleep(rejected.retryAfterMs);
    await expect
      .poll(async () => (await probe()).allowed, { timeout: 5_000, interval: 10 })
      .toBe(true);

    for (const { before, after, decision } of probes) {
      if (after < oldestLeavesAt) expect(decision.allowed).toBe(false);
      if (before >= oldestLeavesAt) expect(decision.allowed).toBe(true);
      if (!decision.allowed) {
        // Advertised: until the oldest leaves, as seen at some instant between before and after.
        expect(decision.retryAfterMs).toBeGreaterThanOrEqual(
          Math.ceil((oldestLeavesAt - after) / 1000),
        );
        expect(decision.retryAfterMs).toBeLessThanOrEqual(
          Math.ceil((oldestLeavesAt - before) / 1000),
        );
      }
    }
    const last = probes.at(-1);
    expect(last?.decision.allowed).toBe(true);
    // The sends that had left when it was admitted are the slots it had: one used, the rest
    // remaining (in practice only the oldest had left, so none remain).
    const leftBy = (at: number) => leavesAt.filter((t) => t <= at).length;
    expect(last?.decision.remaining).toBeGreaterThanOrEqual(leftBy(last?.before ?? 0) - 1);
    expect(last?.decision.remaining).toBeLessThanOrEqual(leftBy(last?.after ?? 0) - 1);
    const scores = await windowScores(admin, prefix);
    expect(scores).not.toContain(sent[0]);
    expect(scores).toContain(sent[2]);
  });

  it('gives a released slot back exactly once', async () => {
    const { prefix, admin } = await testPrefix();
    const limiter = limiterOf({
      redis: await connect(),
      keyPrefix: prefix,
      policies: policies({ default: { limit: 2, windowMs: 60_000 } }),
    });
    const first = await limiter.take(alice);
    const second = await limiter.take(alice);
    const third = await limiter.take(alice);
    expect([first.allowed, second.allowed, third.allowed]).toEqual([true, true, false]);

    // Releasing a rejected ticket gives nothing back.
    await third.release();
    expect((await limiter.take(alice)).allowed).toBe(false);

    await Promise.all([first.release(), first.release()]);
    await first.release();
    expect(await windowScores(admin, prefix)).toHaveLength(1);
    const again = await limiter.take(alice);
    expect(again).toMatchObject({ allowed: true, remaining: 0 });
    expect((await limiter.take(alice)).allowed).toBe(false);
  });

  it('counts a channel-specific policy in a window of its own', async () => {
    const { prefix } = await testPrefix();
    const limiter = limiterOf({
      redis: await connect(),
      keyPrefix: prefix,
      policies: policies({
        default: { limit: 2, windowMs: 60_000 },
        channels: { sms: { limit: 1, windowMs: 60_000 } },
        tenants: { t2: { channels: { sms: { limit: 3, windowMs: 60_000 } } } },
      }),
    });
    const take = (channel: RateLimitKey['channel'], tenantId = 't1') =>
      limiter.take({ tenantId, userId: 'alice', channel });

    expect(await take('sms')).toMatchObject({ allowed: true, policy: 'channel:sms', limit: 1 });
    expect(await take('sms')).toMatchObject({ allowed: false, policy: 'channel:sms' });
    // The other channels share the user's general window, untouched by the SMS.
    expect(await take('email')).toMatchObject({ allowed: true, policy: 'default', remaining: 1 });
    expect(await take('push')).toMatchObject({ allowed: true, policy: 'default', remaining: 0 });
    expect(await take('in_app')).toMatchObject({ allowed: false, policy: 'default' });
    // A tenant's own channel policy has its own limit.
    const t2 = await Promise.all([
      take('sms', 't2'),
      take('sms', 't2'),
      take('sms', 't2'),
      take('sms', 't2'),
    ]);
    expect(countAllowed(t2)).toBe(3);
    expect(t2.every((d) => d.policy === 'tenant:t2:channel:sms')).toBe(true);
  });

  it('keeps users and tenants apart whatever their ids contain', async () => {
    const { prefix, admin } = await testPrefix();
    const limiter = limiterOf({
      redis: await connect(),
      keyPrefix: prefix,
      policies: policies({ default: { limit: 1, windowMs: 60_000 } }),
    });
    // Pairs that a naive `tenant:user` key, or a lossy encoding, would merge.
    const ids: [string, string][] = [
      ['t', 'a:b'],
      ['t:a', 'b'],
      ['t', 'a'],
      ['t', 'a%003ab'],
      ['t', ''],
      ['', 't'],
      ['t', '\ud800'],
      ['t', '\udc00'],
      ['t', '{x}'],
      ['t', '*'],
      ['t', 'ü'],
      ['t', 'x'.repeat(500)],
      ['t', 'x'.repeat(501)],
      ['__proto__', 'a'],
    ];
    const first = await Promise.all(
      ids.map(([tenantId, userId]) => limiter.take({ tenantId, userId, channel: 'email' })),
    );
    expect(first.every((d) => d.allowed)).toBe(true);
    const second = await Promise.all(
      ids.map(([tenantId, userId]) => limiter.take({ tenantId, userId, channel: 'email' })),
    );
    expect(second.some((d) => d.allowed)).toBe(false);
    expect(await admin.keys(`${prefix}:*`)).toHaveLength(ids.length);
  });

  it('reports remaining, retryAfterMs and resetMs consistently', async () => {
    const { prefix, admin } = await testPrefix();
    const windowMs = 60_000;
    const limiter = limiterOf({
      redis: await connect(),
      keyPrefix: prefix,
      policies: policies({ default: { limit: 3, windowMs } }),
    });
    const d1 = await limiter.take(alice);
    const d2 = await limiter.take(alice);
    const d3 = await limiter.take(alice);
    const before = await serverTime(admin);
    const d4 = await limiter.take(alice);
    const after = await serverTime(admin);

    const base = { policy: 'default', limit: 3, windowMs, degraded: false };
    // This send is the newest, so the window resets one full window from now.
    expect(d1).toMatchObject({
      ...base,
      allowed: true,
      remaining: 2,
      retryAfterMs: 0,
      resetMs: windowMs,
    });
    expect(d2).toMatchObject({
      ...base,
      allowed: true,
      remaining: 1,
      retryAfterMs: 0,
      resetMs: windowMs,
    });
    // The last slot: the next send waits for the oldest.
    expect(d3).toMatchObject({ ...base, allowed: true, remaining: 0, resetMs: windowMs });
    expect(d3.retryAfterMs).toBeGreaterThan(0);
    expect(d3.retryAfterMs).toBeLessThanOrEqual(windowMs);

    expect(d4).toMatchObject({ ...base, allowed: false, remaining: 0 });
    const [oldest, , newest] = await windowScores(admin, prefix);
    const until = (score: number | undefined, at: number) =>
      Math.ceil(((score ?? 0) + windowMs * 1000 - at) / 1000);
    expect(d4.retryAfterMs).toBeGreaterThanOrEqual(until(oldest, after));
    expect(d4.retryAfterMs).toBeLessThanOrEqual(until(oldest, before));
    expect(d4.resetMs).toBeGreaterThanOrEqual(until(newest, after));
    expect(d4.resetMs).toBeLessThanOrEqual(until(newest, before));
    expect(d4.retryAfterMs).toBeLessThanOrEqual(d4.resetMs);

    // The set goes away with its newest send.
    const [key] = await admin.keys(`${prefix}:*`);
    const ttl = await admin.pttl(key ?? '');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(windowMs);
  });

  it('runs the script again when Redis has lost its script cache', async () => {
    const { prefix, admin } = await testPrefix();
    const limiter = limiterOf({
      redis: await connect(),
      keyPrefix: prefix,
      policies: policies({ default: { limit: 2, windowMs: 60_000 } }),
    });
    expect((await limiter.take(alice)).allowed).toBe(true);
    await admin.script('FLUSH');
    expect(await limiter.take(alice)).toMatchObject({
      allowed: true,
      remaining: 0,
      degraded: false,
    });
    expect((await limiter.take(alice)).allowed).toBe(false);
    expect(limiter.redisFailures).toBe(0);
  });

  it('throws UnavailableError when Redis is unreachable and onRedisError is closed', async () => {
    const { logger, lines } = recordingLogger();
    const limiter = limiterOf({ redis: unreachable(), onRedisError: 'closed', logger });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => limiter.take(alice)));
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as unknown;
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as UnavailableError).dependency).toBe('Redis (rate limits)');
    }
    expect(limiter.redisFailures).toBe(20);
    // One warning for the burst, not one per request.
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  });

  it('limits exactly in-process, marked degraded, when Redis is unreachable and onRedisError is open', async () => {
    let clock = 1_000_000;
    const { logger, lines } = recordingLogger();
    const limiter = limiterOf({
      redis: unreachable(),
      onRedisError: 'open',
      logger,
      now: () => clock,
      policies: policies({
        default: { limit: 3, windowMs: 1_000 },
        channels: { sms: { limit: 1, windowMs: 1_000 } },
      }),
    });
    const burst = await Promise.all(Array.from({ length: 50 }, () => limiter.take(alice)));
    expect(countAllowed(burst)).toBe(3);
    expect(burst.every((d) => d.degraded)).toBe(true);
    expect(burst.filter((d) => !d.allowed).every((d) => d.retryAfterMs === 1_000)).toBe(true);
    expect(burst.filter((d) => d.allowed).map((d) => d.remaining)).toEqual([2, 1, 0]);

    // The SMS policy has its own window in the fallback too.
    expect(await limiter.take({ ...alice, channel: 'sms' })).toMatchObject({
      allowed: true,
      policy: 'channel:sms',
    });
    expect(await limiter.take({ ...alice, userId: 'bob' })).toMatchObject({
      allowed: true,
      remaining: 2,
    });

    clock += 999;
    expect(await limiter.take(alice)).toMatchObject({
      allowed: false,
      retryAfterMs: 1,
      resetMs: 1,
    });
    clock += 1;
    const next = await limiter.take(alice);
    expect(next).toMatchObject({ allowed: true, remaining: 2, degraded: true, resetMs: 1_000 });

    // Release works on fallback tickets, once.
    await next.release();
    await next.release();
    expect((await limiter.take(alice)).remaining).toBe(2);

    expect(limiter.redisFailures).toBe(50 + 2 + 2 + 1);
    // The first failure was reported at once; the rest wait for the next warning.
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    clock += 5_000;
    await limiter.take(alice);
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(2);
    expect(warnings[1]?.obj).toMatchObject({
      failures: 55,
      totalFailures: 56,
      onRedisError: 'open',
    });
  });

  it('gives up on a Redis that accepts but never answers after timeoutMs', async () => {
    // A server that accepts connections and says nothing: a hung or partitioned Redis.
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.add(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    // No commandTimeout and no ready check: only the limiter's own timeout stands between a
    // request and a hang.
    const redis = new Redis({
      host: '127.0.0.1',
      port,
      protocol: 2,
      disableClientInfo: true,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    redis.on('error', () => undefined);
    cleanups.add(() => redis.disconnect());
    await redis.connect();

    const open = limiterOf({ redis, onRedisError: 'open', timeoutMs: 200 });
    expect(await open.take(alice)).toMatchObject({ allowed: true, degraded: true });
    const closed = limiterOf({ redis, onRedisError: 'closed', timeoutMs: 200 });
    await expect(closed.take(alice)).rejects.toBeInstanceOf(UnavailableError);
    expect(open.redisFailures + closed.redisFailures).toBe(2);
  });

  it('goes back to Redis, and says so once, when Redis is back', async () => {
    const { prefix } = await testPrefix();
    const { logger, lines } = recordingLogger();
    const redis = await connect();
    redis.on('error', () => undefined);
    const limiter = limiterOf({
      redis,
      keyPrefix: prefix,
      onRedisError: 'open',
      logger,
      policies: policies({ default: { limit: 5, windowMs: 60_000 } }),
    });
    expect(await limiter.take(alice)).toMatchObject({ allowed: true, degraded: false });

    const ended = once(redis, 'end');
    redis.disconnect();
    await ended;
    expect(await limiter.take(alice)).toMatchObject({
      allowed: true,
      degraded: true,
      remaining: 4,
    });
    expect(await limiter.take(alice)).toMatchObject({
      allowed: true,
      degraded: true,
      remaining: 3,
    });

    await redis.connect();
    // Redis still holds the one send it counted; the in-process ones it never saw.
    expect(await limiter.take(alice)).toMatchObject({
      allowed: true,
      degraded: false,
      remaining: 3,
    });
    expect(await limiter.take(alice)).toMatchObject({
      allowed: true,
      degraded: false,
      remaining: 2,
    });
    expect(limiter.redisFailures).toBe(2);
    expect(lines.map((l) => l.level)).toEqual(['warn', 'info']);
  });

  it('waits for takes in flight on close, then refuses new ones', async () => {
    const { prefix } = await testPrefix();
    const limiter = limiterOf({ redis: await connect(), keyPrefix: prefix });
    let decided = 0;
    const pending = Array.from({ length: 20 }, () =>
      limiter.take(alice).then(() => {
        decided += 1;
      }),
    );
    await limiter.close();
    expect(decided).toBe(20);
    await Promise.all(pending);
    await expect(limiter.take(alice)).rejects.toBeInstanceOf(UnavailableError);
  });
});
