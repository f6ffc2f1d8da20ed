/**
 * The RateLimiter port on Redis: an exact sliding window per (tenant, user) — or per (tenant,
 * user, channel) under a channel-specific policy (see domain/rate-limit-policy.ts).
 *
 * Each window is a sorted set of the sends it counts, scored by the Redis server's clock in
 * microseconds, one unique member per send. One Lua script drops the entries that left the window,
 * counts the rest and adds this send only if the count is below the limit. Redis runs a script
 * atomically, so however many Herald processes call at once, no window of length W ever holds more
 * than `limit` accepted sends; reading the clock inside the script means processes with skewed
 * clocks still agree on what "now" is. A set never holds more than `limit` members and expires
 * one window after its newest send.
 *
 * Recommended client option: `{ enableOfflineQueue: false }` — a request should be decided now,
 * not after Redis comes back. The limiter gives up on a call after `timeoutMs` itself, so the
 * client needs no `commandTimeout` of its own (Herald's sets none: it would be a second timer
 * per command).
 *
 * When Redis fails (refused, timed out, any error):
 *   - `onRedisError: 'closed'`: `take` throws UnavailableError('Redis (rate limits)');
 *   - `onRedisError: 'open'`: the same policy decides with an exact window kept in this process,
 *     marked `degraded`. It is per process, so while Redis is down a user may get `limit` sends
 *     from each process, and sends admitted then are unknown to Redis once it is back.
 * Either way `redisFailures` counts the failure and a warning is logged at most once per
 * `warnIntervalMs`. Redis holds nothing but these windows: if it loses them (a restart without
 * persistence), users simply get fresh windows.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { UnavailableError } from '../../domain/errors.js';
import type { Logger } from '../../domain/ports.js';
import {
  resolvePolicy,
  type RateLimitDecision,
  type RateLimiter,
  type RateLimitKey,
  type RateLimitPolicies,
  type RateLimitTicket,
  type ResolvedRateLimitPolicy,
} from '../../domain/rate-limit-policy.js';

export interface RedisRateLimiterDeps {
  redis: Redis;
  policies: RateLimitPolicies;
  /** Prefix of every key this limiter writes. */
  keyPrefix?: string;
  onRedisError: 'open' | 'closed';
  logger: Logger;
  /** Clock of the in-process fallback and of the warning throttle (ms since the epoch). */
  now?: () => number;
  /** How long one Redis call may take before it counts as failed. */
  timeoutMs?: number;
  /** At most one warning about Redis failures per this interval. */
  warnIntervalMs?: number;
}

// KEYS[1] the window's sorted set. ARGV: limit, window in µs, this send's member.
// Replies {allowed, count, retryAfterUs, resetUs}; integers, which Redis replies exactly.
const TAKE_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local retry = 0
local reset = 0
if count > 0 then
  if count >= limit then
    -- The next send fits once enough of the oldest have left to bring the count below the limit.
    local pivot = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    retry = tonumber(pivot[2]) + window - now
  end
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  reset = tonumber(newest[2]) + window - now
end
return {allowed, count, retry, reset}
`;
const TAKE_SHA = createHash('sha1').update(TAKE_SCRIPT).digest('hex');

/** Key parts kept as they are; everything else is escaped, so parts never contain `:` or `{`. */
const SAFE = /^[A-Za-z0-9_.-]$/;
/** Escaped parts longer than this are hashed, to bound key length. */
const MAX_PART = 128;

export function createRedisRateLimiter(deps: RedisRateLimiterDeps): RateLimiter {
  const { redis, policies, onRedisError, logger } = deps;
  const keyPrefix = deps.keyPrefix ?? 'herald:rl';
  const now = deps.now ?? Date.now;
  const timeoutMs = deps.timeoutMs ?? 500;
  const warnIntervalMs = deps.warnIntervalMs ?? 5_000;
  const fallback = createLocalWindows(now);
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;
  let redisFailures = 0;
  let unreported = 0;
  let lastWarnAt = -Infinity;
  let failing = false;

  function noteFailure(err: unknown): void {
    redisFailures += 1;
    unreported += 1;
    failing = true;
    const t = now();
    if (t - lastWarnAt < warnIntervalMs) return;
    lastWarnAt = t;
    logger.warn(
      { err, failures: unreported, totalFailures: redisFailures, onRedisError },
      onRedisError === 'open'
        ? 'Redis (rate limits) failed: limiting in-process'
        : 'Redis (rate limits) failed: rejecting sends',
    );
    unreported = 0;
  }

  function noteSuccess(): void {
    if (!failing) return;
    failing = false;
    logger.info({ totalFailures: redisFailures }, 'Redis (rate limits) available again');
  }

  /** Runs `call` bounded by `timeoutMs`; `onLate` sees its result if it arrives after that. */
  function bounded<T>(call: Promise<T>, onLate?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new Error(`Redis call timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      call.then(
        (value) => {
          clearTimeout(timer);
          if (timedOut) onLate?.(value);
          else resolve(value);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  function track<T>(p: Promise<T>): Promise<T> {
    inFlight.add(p);
    const done = () => inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  async function evalTake(key: string, policy: ResolvedRateLimitPolicy, member: string) {
    const args = [policy.limit, policy.windowMs * 1000, member];
    try {
      return await redis.evalsha(TAKE_SHA, 1, key, ...args);
    } catch (err) {
      // A fresh or flushed server has no cached script; EVAL runs it and caches it again.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await redis.eval(TAKE_SCRIPT, 1, key, ...args);
    }
  }

  async function take(rateKey: RateLimitKey): Promise<RateLimitTicket> {
    if (closed) throw new UnavailableError('rate limiter (closed)');
    const policy = resolvePolicy(policies, rateKey.tenantId, rateKey.channel);
    const key = windowKey(keyPrefix, rateKey, policy);
    const member = randomUUID();
    fallback.sweep();
    let reply: TakeReply;
    try {
      reply = parseReply(
        await bounded(evalTake(key, policy, member), (late) => {
          // Counted in Redis after we had stopped waiting: decided elsewhere, so give it back.
          if (isAllowedReply(late)) void redis.zrem(key, member).catch(() => undefined);
        }),
      );
    } catch (err) {
      noteFailure(err);
      if (onRedisError === 'closed') {
        throw new UnavailableError('Redis (rate limits)', { cause: err });
      }
      return fallback.take(key, policy, member);
    }
    noteSuccess();
    const decision = toDecision(policy, reply);
    let released = !decision.allowed;
    return {
      ...decision,
      release: () => {
        if (released) return Promise.resolve();
        released = true;
        return track(
          bounded(redis.zrem(key, member)).then(noteSuccess, (err: unknown) => {
            // The slot expires with its window anyway; a failed give-back only makes us stricter.
            noteFailure(err);
          }),
        );
      },
    };
  }

  return {
    take: (key) => track(take(key)),
    get redisFailures() {
      return redisFailures;
    },
    async close() {
      closed = true;
      await Promise.allSettled([...inFlight]);
      fallback.clear();
    },
  };
}

interface TakeReply {
  allowed: boolean;
  count: number;
  retryUs: number;
  resetUs: number;
}

function isAllowedReply(reply: unknown): boolean {
  return Array.isArray(reply) && Number(reply[0]) === 1;
}

function parseReply(reply: unknown): TakeReply {
  // Numbers may arrive as strings (a client created with `stringNumbers`).
  const values = Array.isArray(reply) ? reply.map((v) => Number(v)) : [];
  const [allowed, count, retryUs, resetUs] = values;
  if (
    values.length !== 4 ||
    allowed === undefined ||
    count === undefined ||
    retryUs === undefined ||
    resetUs === undefined ||
    !values.every(Number.isFinite)
  ) {
    throw new Error(`unexpected reply from the rate-limit script: ${JSON.stringify(reply)}`);
  }
  return { allowed: allowed === 1, count, retryUs, resetUs };
}

function toDecision(policy: ResolvedRateLimitPolicy, reply: TakeReply): RateLimitDecision {
  return {
    allowed: reply.allowed,
    policy: policy.name,
    limit: policy.limit,
    windowMs: policy.windowMs,
    remaining: Math.max(0, policy.limit - reply.count),
    // Rounded up: waiting the advertised time must be enough.
    retryAfterMs: Math.max(0, Math.ceil(reply.retryUs / 1000)),
    resetMs: Math.max(0, Math.ceil(reply.resetUs / 1000)),
    degraded: false,
  };
}

/** `<prefix>:<tenant>:<user>` or `<prefix>:<tenant>:<user>:<channel>`; parts are escaped. */
function windowKey(prefix: string, key: RateLimitKey, policy: ResolvedRateLimitPolicy): string {
  const base = `${prefix}:${keyPart(key.tenantId)}:${keyPart(key.userId)}`;
  return policy.scope === 'user-channel' ? `${base}:${key.channel}` : base;
}

/**
 * Any string as a key part, injectively: safe characters stay, every other UTF-16 code unit
 * becomes `%xxxx` (so lone surrogates survive too); long results become `#<sha256>`, which no
 * escaped part can look like.
 */
function keyPart(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] ?? '';
    out += SAFE.test(ch) ? ch : `%${s.charCodeAt(i).toString(16).padStart(4, '0')}`;
  }
  if (out.length <= MAX_PART) return out;
  return `#${createHash('sha256').update(out).digest('hex')}`;
}

interface LocalWindow {
  windowMs: number;
  /** Times (ms) and members of the counted sends. */
  entries: { at: number; member: string }[];
}

/**
 * The 'open' fallback: the same exact sliding window, in this process's memory. Windows are swept
 * at most every few seconds so an outage with many users does not keep them all forever.
 */
function createLocalWindows(now: () => number) {
  const windows = new Map<string, LocalWindow>();
  const sweepEveryMs = 5_000;
  let lastSweep = now();

  return {
    take(key: string, policy: ResolvedRateLimitPolicy, member: string): RateLimitTicket {
      const t = now();
      const since = t - policy.windowMs;
      const window = windows.get(key) ?? { windowMs: policy.windowMs, entries: [] };
      window.windowMs = policy.windowMs;
      // A full filter rather than trimming the front: the wall clock may step back.
      window.entries = window.entries.filter((e) => e.at > since);
      const allowed = window.entries.length < policy.limit;
      if (allowed) window.entries.push({ at: t, member });
      if (window.entries.length > 0) windows.set(key, window);
      else windows.delete(key);

      const times = window.entries.map((e) => e.at).sort((a, b) => a - b);
      const count = times.length;
      const pivot = count >= policy.limit ? times[count - policy.limit] : undefined;
      const newest = times[count - 1];
      let released = !allowed;
      return {
        allowed,
        policy: policy.name,
        limit: policy.limit,
        windowMs: policy.windowMs,
        remaining: Math.max(0, policy.limit - count),
        retryAfterMs: pivot === undefined ? 0 : Math.max(0, Math.ceil(pivot + policy.windowMs - t)),
        resetMs: newest === undefined ? 0 : Math.max(0, Math.ceil(newest + policy.windowMs - t)),
        degraded: true,
        release: () => {
          if (!released) {
            released = true;
            const current = windows.get(key);
            if (current) current.entries = current.entries.filter((e) => e.member !== member);
          }
          return Promise.resolve();
        },
      };
    },
    sweep(): void {
      const t = now();
      if (t - lastSweep < sweepEveryMs) return;
      lastSweep = t;
      for (const [key, window] of windows) {
        if (window.entries.every((e) => e.at <= t - window.windowMs)) windows.delete(key);
      }
    },
    clear(): void {
      windows.clear();
    },
  };
}
