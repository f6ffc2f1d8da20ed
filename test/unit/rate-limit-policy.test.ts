/**
 * Rate-limit policies: the config schema and which policy applies to a send.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DEFAULT_RATE_LIMIT_POLICIES,
  rateLimitPolicyConfig,
  resolvePolicy,
  type RateLimitPolicies,
} from '../../src/domain/rate-limit-policy.js';

const policies: RateLimitPolicies = rateLimitPolicyConfig.parse({
  default: { limit: 10, windowMs: 60_000 },
  channels: { sms: { limit: 2, windowMs: 60_000 }, push: { limit: 5, windowMs: 10_000 } },
  tenants: {
    t1: { limit: 100, channels: { sms: { limit: 20, windowMs: 3_600_000 } } },
    t2: { channels: { email: { limit: 3, windowMs: 1_000 } } },
    t3: { windowMs: 5_000 },
  },
});

/** The problems zod reports, as `path: message` lines. */
function problems(input: unknown): string[] {
  const result = rateLimitPolicyConfig.safeParse(input);
  if (result.success) return [];
  return result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('rateLimitPolicyConfig', () => {
  it('defaults to 10 sends per 60,000 ms when nothing is configured', () => {
    expect(DEFAULT_RATE_LIMIT_POLICIES).toEqual({ default: { limit: 10, windowMs: 60_000 } });
    expect(rateLimitPolicyConfig.parse({})).toEqual(DEFAULT_RATE_LIMIT_POLICIES);
    expect(resolvePolicy(DEFAULT_RATE_LIMIT_POLICIES, 'any', 'email')).toEqual({
      name: 'default',
      limit: 10,
      windowMs: 60_000,
      scope: 'user',
    });
  });

  it('names the path of a limit below 1 or a window below 1000 ms', () => {
    const found = problems({
      default: { limit: 0, windowMs: 999 },
      tenants: { t1: { channels: { sms: { limit: 1.5, windowMs: 1000 } } } },
    });
    expect(found).toHaveLength(3);
    expect(found[0]).toMatch(/^default\.limit: /);
    expect(found[1]).toMatch(/^default\.windowMs: /);
    expect(found[2]).toMatch(/^tenants\.t1\.channels\.sms\.limit: /);
    expect(
      z.prettifyError(rateLimitPolicyConfig.safeParse({ default: { limit: 0 } }).error!),
    ).toContain('default.limit');
  });

  it('rejects unknown channels and unknown keys at every level, naming where', () => {
    expect(problems({ channels: { fax: { limit: 1, windowMs: 1000 } } })).toEqual([
      expect.stringMatching(/^channels: .*"fax"/),
    ]);
    expect(
      problems({ tenants: { t1: { channels: { pigeon: { limit: 1, windowMs: 1000 } } } } }),
    ).toEqual([expect.stringMatching(/^tenants\.t1\.channels: .*"pigeon"/)]);
    expect(problems({ default: { limit: 1, windowMs: 1000, burst: 5 } })).toEqual([
      expect.stringMatching(/^default: .*"burst"/),
    ]);
    expect(problems({ tenants: { t1: { limt: 5 } } })).toEqual([
      expect.stringMatching(/^tenants\.t1: .*"limt"/),
    ]);
    expect(problems({ defaults: {} })).toEqual([expect.stringMatching(/^: .*"defaults"/)]);
  });

  it('rejects limits over 100,000 and windows over 30 days', () => {
    expect(
      problems({
        default: { limit: 100_001, windowMs: 60_000 },
        channels: { push: { limit: 1, windowMs: 30 * 86_400_000 + 1 } },
      }),
    ).toEqual([
      expect.stringMatching(/^default\.limit: /),
      expect.stringMatching(/^channels\.push\.windowMs: /),
    ]);
    expect(problems({ default: { limit: 100_000, windowMs: 30 * 86_400_000 } })).toEqual([]);
  });

  it('rejects a channel policy missing its window, an empty tenant id and non-numbers', () => {
    expect(problems({ channels: { sms: { limit: 1 } } })).toEqual([
      expect.stringMatching(/^channels\.sms\.windowMs: /),
    ]);
    expect(problems({ tenants: { '': { limit: 1 } } })).toEqual([
      expect.stringMatching(/^tenants\.: /),
    ]);
    expect(problems({ default: { limit: '10', windowMs: 60_000 } })).toEqual([
      expect.stringMatching(/^default\.limit: /),
    ]);
  });
});

describe('resolvePolicy', () => {
  it('picks tenant+channel over tenant over channel over default', () => {
    expect(resolvePolicy(policies, 't1', 'sms')).toEqual({
      name: 'tenant:t1:channel:sms',
      limit: 20,
      windowMs: 3_600_000,
      scope: 'user-channel',
    });
    // t1's general policy wins over the global push policy.
    expect(resolvePolicy(policies, 't1', 'push')).toEqual({
      name: 'tenant:t1',
      limit: 100,
      windowMs: 60_000,
      scope: 'user',
    });
    expect(resolvePolicy(policies, 'other', 'push')).toEqual({
      name: 'channel:push',
      limit: 5,
      windowMs: 10_000,
      scope: 'user-channel',
    });
    expect(resolvePolicy(policies, 'other', 'email')).toEqual({
      name: 'default',
      limit: 10,
      windowMs: 60_000,
      scope: 'user',
    });
  });

  it('takes the part a tenant policy leaves out from the default', () => {
    expect(resolvePolicy(policies, 't3', 'email')).toEqual({
      name: 'tenant:t3',
      limit: 10,
      windowMs: 5_000,
      scope: 'user',
    });
  });

  it('falls through to channel and default when a tenant sets only other channels', () => {
    expect(resolvePolicy(policies, 't2', 'email')).toMatchObject({
      name: 'tenant:t2:channel:email',
      limit: 3,
      scope: 'user-channel',
    });
    expect(resolvePolicy(policies, 't2', 'sms')).toMatchObject({
      name: 'channel:sms',
      limit: 2,
      scope: 'user-channel',
    });
    expect(resolvePolicy(policies, 't2', 'webhook')).toMatchObject({
      name: 'default',
      scope: 'user',
    });
  });

  it('finds no tenant policy for ids that are names of object properties', () => {
    for (const tenant of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(resolvePolicy(policies, tenant, 'email').name).toBe('default');
    }
  });
});
