import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_POLICY,
  backoffMs,
  decideDelivery,
  type RetryPolicy,
} from '../../src/domain/delivery-decision.js';
import {
  NotFoundError,
  PermanentDeliveryError,
  TransientDeliveryError,
  UnavailableError,
} from '../../src/domain/errors.js';

const policy: RetryPolicy = { baseMs: 1_000, factor: 2, capMs: 60_000, maxAttempts: 10 };
const always = (r: number) => () => r;
const never = () => {
  throw new Error('random must not be called');
};

describe('decideDelivery', () => {
  it.each([null, undefined])('acks DELIVERED when the attempt ended with %s', (error) => {
    expect(decideDelivery(error, 1, policy, never)).toEqual({ status: 'DELIVERED', action: 'ack' });
  });

  it('acks DELIVERED when the last allowed attempt succeeds', () => {
    expect(decideDelivery(null, policy.maxAttempts, policy, never)).toEqual({
      status: 'DELIVERED',
      action: 'ack',
    });
  });

  it('terms FAILED with the message when the error is permanent on the first attempt', () => {
    const decision = decideDelivery(
      new PermanentDeliveryError('mailbox does not exist'),
      1,
      policy,
      never,
    );

    expect(decision).toEqual({ status: 'FAILED', action: 'term', error: 'mailbox does not exist' });
  });

  it('naks RETRYING with a backoff when the error is transient and attempts remain', () => {
    const decision = decideDelivery(
      new TransientDeliveryError('502 from provider'),
      3,
      policy,
      always(0.5),
    );

    expect(decision).toEqual({
      status: 'RETRYING',
      action: 'nak',
      delayMs: 2_000, // 0.5 * 1000 * 2^(3-1)
      error: '502 from provider',
    });
  });

  it('naks with the Retry-After delay, ignoring the backoff, when the provider sent one', () => {
    const error = new TransientDeliveryError('429 from provider', { retryAfterMs: 7_500 });

    expect(decideDelivery(error, 2, policy, never)).toEqual({
      status: 'RETRYING',
      action: 'nak',
      delayMs: 7_500,
      error: '429 from provider',
    });
  });

  it('naks with the Retry-After delay even when it exceeds the backoff cap', () => {
    const error = new TransientDeliveryError('429', { retryAfterMs: policy.capMs * 3 });

    const decision = decideDelivery(error, 1, policy, never);

    expect(decision).toMatchObject({ action: 'nak', delayMs: policy.capMs * 3 });
  });

  it('naks with a zero delay when Retry-After is zero', () => {
    const error = new TransientDeliveryError('503', { retryAfterMs: 0 });

    expect(decideDelivery(error, 1, policy, never)).toMatchObject({ action: 'nak', delayMs: 0 });
  });

  it('terms FAILED when a transient error happens on the last attempt', () => {
    const decision = decideDelivery(
      new TransientDeliveryError('timeout'),
      policy.maxAttempts,
      policy,
      never,
    );

    expect(decision).toEqual({ status: 'FAILED', action: 'term', error: 'timeout' });
  });

  it('terms FAILED when the last attempt fails even though the provider sent Retry-After', () => {
    const error = new TransientDeliveryError('429', { retryAfterMs: 1_000 });

    expect(decideDelivery(error, policy.maxAttempts, policy, never)).toMatchObject({
      status: 'FAILED',
      action: 'term',
    });
  });

  it('terms FAILED when the attempt number is past the limit', () => {
    expect(
      decideDelivery(new TransientDeliveryError('x'), policy.maxAttempts + 3, policy, never),
    ).toMatchObject({ status: 'FAILED', action: 'term' });
  });

  it('terms FAILED on the first attempt when the policy allows a single attempt', () => {
    const single = { ...policy, maxAttempts: 1 };

    expect(decideDelivery(new TransientDeliveryError('x'), 1, single, never)).toMatchObject({
      status: 'FAILED',
      action: 'term',
    });
  });

  it('retries with a masked description when the error is unexpected', () => {
    const decision = decideDelivery(new TypeError('boom'), 1, policy, always(1));

    expect(decision).toEqual({
      status: 'RETRYING',
      action: 'nak',
      delayMs: 1_000,
      error: 'unexpected error: boom',
    });
  });

  it('retries with a generic description when something other than an Error was thrown', () => {
    expect(decideDelivery('a string', 1, policy, always(0))).toEqual({
      status: 'RETRYING',
      action: 'nak',
      delayMs: 0,
      error: 'unexpected error',
    });
  });

  it('retries when a dependency of ours was unavailable during the attempt', () => {
    expect(decideDelivery(new UnavailableError('postgres'), 1, policy, always(0))).toMatchObject({
      status: 'RETRYING',
      action: 'nak',
      error: 'postgres is unavailable',
    });
  });

  it('retries, not fails, when a non-delivery domain error is thrown', () => {
    expect(decideDelivery(new NotFoundError('template'), 1, policy, always(0))).toMatchObject({
      status: 'RETRYING',
      action: 'nak',
    });
  });

  it('uses full jitter over the exponential ceiling when the provider gave no Retry-After', () => {
    for (let attempt = 1; attempt < policy.maxAttempts; attempt++) {
      const ceiling = Math.min(policy.capMs, policy.baseMs * policy.factor ** (attempt - 1));
      const low = decideDelivery(new TransientDeliveryError('x'), attempt, policy, always(0));
      const high = decideDelivery(
        new TransientDeliveryError('x'),
        attempt,
        policy,
        always(0.999_999_9),
      );

      expect(low).toMatchObject({ delayMs: 0 });
      expect(high).toMatchObject({ delayMs: ceiling });
    }
  });
});

describe('backoffMs', () => {
  it('is at most base * factor^(attempt-1) when that is below the cap', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffMs(a, policy, always(1)))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000,
    ]);
  });

  it('is at most the cap when the exponential exceeds it', () => {
    expect([7, 8, 20, 100, 2_000].map((a) => backoffMs(a, policy, always(1)))).toEqual([
      60_000, 60_000, 60_000, 60_000, 60_000,
    ]);
  });

  it('is zero when the random draw is zero', () => {
    expect(backoffMs(5, policy, always(0))).toBe(0);
  });

  it('scales the ceiling by the random draw when the draw is in between', () => {
    expect(backoffMs(4, policy, always(0.25))).toBe(2_000);
    expect(backoffMs(9, policy, always(0.5))).toBe(30_000);
  });

  it('stays within [0, ceiling] for every draw when random is Math.random', () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** (attempt - 1));
      for (let i = 0; i < 200; i++) {
        const d = backoffMs(attempt, policy, Math.random);
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('treats attempt 0 like the first attempt when the caller passes it', () => {
    expect(backoffMs(0, policy, always(1))).toBe(policy.baseMs);
  });

  it('grows by the configured factor when the factor is not 2', () => {
    const p = { ...policy, baseMs: 100, factor: 3, capMs: 1_000_000 };

    expect([1, 2, 3, 4].map((a) => backoffMs(a, p, always(1)))).toEqual([100, 300, 900, 2_700]);
  });

  it('stays constant when the factor is 1', () => {
    const p = { ...policy, baseMs: 250, factor: 1 };

    expect([1, 5, 50].map((a) => backoffMs(a, p, always(1)))).toEqual([250, 250, 250]);
  });
});

describe('DEFAULT_RETRY_POLICY', () => {
  it('gives up after six attempts with a one second base doubling to a five minute cap', () => {
    expect(DEFAULT_RETRY_POLICY).toEqual({
      baseMs: 1_000,
      factor: 2,
      capMs: 300_000,
      maxAttempts: 6,
    });
    expect(
      decideDelivery(new TransientDeliveryError('x'), 6, DEFAULT_RETRY_POLICY, never),
    ).toMatchObject({
      action: 'term',
    });
    expect(
      decideDelivery(new TransientDeliveryError('x'), 5, DEFAULT_RETRY_POLICY, always(1)),
    ).toMatchObject({
      action: 'nak',
      delayMs: 16_000,
    });
  });
});
