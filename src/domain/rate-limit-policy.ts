/**
 * Per-user rate limits: the policies, how one is chosen for a send, and the port that enforces
 * them (infra/redis/rate-limiter.ts implements it).
 *
 * A policy is "at most `limit` sends in any window of `windowMs` milliseconds" — an exact sliding
 * window, not fixed buckets, so a burst straddling a bucket boundary cannot get through twice.
 *
 * Which policy applies to a send by (tenant, user, channel), most specific first:
 *   1. `tenants[tenant].channels[channel]`  name `tenant:<tenant>:channel:<channel>`
 *   2. `tenants[tenant]` with `limit` and/or `windowMs` set (the part not set is taken from
 *      `default`)                            name `tenant:<tenant>`
 *   3. `channels[channel]`                   name `channel:<channel>`
 *   4. `default`                             name `default`
 *
 * What is counted against the limit depends on the kind of policy that was chosen:
 *   - a channel-specific policy (1 or 3), scope `user-channel`: the user's sends on that channel,
 *     in a window of their own. They do not count against the user's general window.
 *   - a general policy (2 or 4), scope `user`: every send of the user that falls under the
 *     general policy, whatever its channel, in one shared window.
 * So with `default` 10/min and `channels.sms` 2/min, a user may send 2 SMS and, besides them, 10
 * messages on the other channels together in any minute.
 *
 * Without any configuration every user gets `default`: 10 sends per 60,000 ms.
 */
import { z } from 'zod';
import { CHANNELS, type Channel } from './notification.js';

/**
 * An exact window stores one entry per counted send, so the limit bounds the memory a user can
 * make the limiter hold.
 */
const MAX_LIMIT = 100_000;
/**
 * Windows are kept in microseconds by the store; beyond a month they stop being a rate limit and
 * would only keep keys alive.
 */
const MAX_WINDOW_MS = 30 * 86_400_000;

const limit = z.int().min(1).max(MAX_LIMIT);
const windowMs = z.int().min(1000).max(MAX_WINDOW_MS);

const policy = z.object({ limit, windowMs }).strict();
const channelPolicies = z.partialRecord(z.enum(CHANNELS), policy);

/** The rate-limit section of the configuration (as parsed from JSON). */
export const rateLimitPolicyConfig = z
  .object({
    default: policy.default({ limit: 10, windowMs: 60_000 }),
    channels: channelPolicies.optional(),
    tenants: z
      .record(
        z.string().min(1),
        z
          .object({
            limit: limit.optional(),
            windowMs: windowMs.optional(),
            channels: channelPolicies.optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

/** Validated rate-limit policies. */
export type RateLimitPolicies = z.output<typeof rateLimitPolicyConfig>;

/** What applies when nothing is configured: 10 sends per user per minute. */
export const DEFAULT_RATE_LIMIT_POLICIES: RateLimitPolicies = rateLimitPolicyConfig.parse({});

/** The policy that applies to one send. */
export interface ResolvedRateLimitPolicy {
  /** `default`, `channel:sms`, `tenant:t1` or `tenant:t1:channel:sms`: for logs and headers. */
  name: string;
  limit: number;
  windowMs: number;
  /** `user`: one window for all the user's sends under it; `user-channel`: one per channel. */
  scope: 'user' | 'user-channel';
}

/** The policy for a send by a user of `tenantId` on `channel` (precedence in the module doc). */
export function resolvePolicy(
  policies: RateLimitPolicies,
  tenantId: string,
  channel: Channel,
): ResolvedRateLimitPolicy {
  // Own-property lookups: a tenant id such as `__proto__` or `constructor` must find nothing.
  const tenant = own(policies.tenants, tenantId);
  const tenantChannel = own(tenant?.channels, channel);
  if (tenantChannel) {
    return {
      name: `tenant:${tenantId}:channel:${channel}`,
      ...tenantChannel,
      scope: 'user-channel',
    };
  }
  if (tenant && (tenant.limit !== undefined || tenant.windowMs !== undefined)) {
    return {
      name: `tenant:${tenantId}`,
      limit: tenant.limit ?? policies.default.limit,
      windowMs: tenant.windowMs ?? policies.default.windowMs,
      scope: 'user',
    };
  }
  const channelPolicy = own(policies.channels, channel);
  if (channelPolicy) {
    return { name: `channel:${channel}`, ...channelPolicy, scope: 'user-channel' };
  }
  return { name: 'default', ...policies.default, scope: 'user' };
}

function own<T>(record: Partial<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Who is sending: the window a send is counted in is derived from this and the policy. */
export interface RateLimitKey {
  tenantId: string;
  userId: string;
  channel: Channel;
}

/** The outcome of one `take`. */
export interface RateLimitDecision {
  allowed: boolean;
  /** The name of the policy that decided. */
  policy: string;
  limit: number;
  windowMs: number;
  /** Sends still allowed in the current window after this one. */
  remaining: number;
  /**
   * ms until the next send would be allowed: 0 when allowed and slots remain; when rejected (or
   * when this send took the last slot), until the oldest counted send leaves the window.
   */
  retryAfterMs: number;
  /** ms until the window fully resets (for RateLimit headers). */
  resetMs: number;
  /** Decided by the in-process fallback because Redis failed. */
  degraded: boolean;
}

export interface RateLimitTicket extends RateLimitDecision {
  /**
   * Gives the slot back (the request was rejected or replayed after all); idempotent; no-op when
   * not allowed. Never throws: a slot that cannot be given back expires with its window.
   */
  release(): Promise<void>;
}

/** Counts sends against the policies. */
export interface RateLimiter {
  /** Counts this send if the window has room; the ticket says whether it did. */
  take(key: RateLimitKey): Promise<RateLimitTicket>;
  /** Redis failures since start, for logs/metrics. */
  readonly redisFailures: number;
  /** Waits for calls in flight; does not close the Redis client (its owner does). */
  close(): Promise<void>;
}
