import { describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../src/domain/errors.js';
import type { Logger, Provider } from '../../src/domain/ports.js';
import { createCircuitBreaker } from '../../src/workers/circuit-breaker.js';
import { createProviderChain } from '../../src/workers/provider-chain.js';
import { draftNotification } from '../support/fixtures.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * A provider whose calls answer from `script` in order ('ok', 'transient', 'permanent', or
 * 'receiver': a transient failure of the caller's own receiver).
 */
function scripted(name: string, script: string[]) {
  const calls: string[] = [];
  const provider: Provider = {
    name,
    deliver(n) {
      calls.push(n.id);
      const next = script.shift() ?? 'ok';
      if (next === 'transient') return Promise.reject(new TransientDeliveryError(`${name} down`));
      if (next === 'receiver')
        return Promise.reject(
          new TransientDeliveryError(`${name}: HTTP 503`, { receiverFault: true }),
        );
      if (next === 'permanent')
        return Promise.reject(new PermanentDeliveryError(`${name} says no`));
      return Promise.resolve({ providerMessageId: `${name}-${n.id}` });
    },
  };
  return { provider, calls };
}

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const signal = new AbortController().signal;

describe('circuit breaker', () => {
  it('opens after N consecutive failures, probes once after the cool-down, closes on success', () => {
    const c = clock();
    const b = createCircuitBreaker({ failures: 3, cooldownMs: 1000 }, c.now);
    b.failure();
    b.failure();
    b.success(); // a success resets the count
    b.failure();
    b.failure();
    expect(b.acquire()).toBe(0);
    b.failure();
    expect(b.state()).toBe('open');
    expect(b.acquire()).toBe(1000);
    c.advance(400);
    expect(b.waitMs()).toBe(600);
    c.advance(600);
    expect(b.acquire()).toBe(0); // the probe
    expect(b.state()).toBe('half-open');
    expect(b.acquire()).toBeGreaterThan(0); // only one probe at a time
    b.success();
    expect(b.state()).toBe('closed');
    expect(b.acquire()).toBe(0);
  });

  it('opens again for a full cool-down when the probe fails', () => {
    const c = clock();
    const b = createCircuitBreaker({ failures: 1, cooldownMs: 500 }, c.now);
    b.failure();
    c.advance(500);
    expect(b.acquire()).toBe(0);
    b.failure();
    expect(b.state()).toBe('open');
    expect(b.acquire()).toBe(500);
  });

  it('frees the probe without a verdict when the call failed permanently', () => {
    const c = clock();
    const b = createCircuitBreaker({ failures: 1, cooldownMs: 500 }, c.now);
    b.failure();
    c.advance(500);
    expect(b.acquire()).toBe(0);
    b.neutral();
    expect(b.state()).toBe('half-open');
    expect(b.acquire()).toBe(0);
  });
});

describe('provider chain', () => {
  const breaker = { failures: 2, cooldownMs: 1000 };

  it('fails over to the next provider on a transient failure, within one attempt', async () => {
    const a = scripted('a', ['transient']);
    const b = scripted('b', []);
    const chain = createProviderChain(
      [
        { provider: a.provider, breaker, concurrency: 10 },
        { provider: b.provider, breaker, concurrency: 10 },
      ],
      quiet,
    );
    const n = draftNotification();
    expect(await chain.deliver(n, signal)).toEqual({
      ok: true,
      provider: 'b',
      providerMessageId: `b-${n.id}`,
    });
    expect(a.calls).toEqual([n.id]);
  });

  it('does not fail over on a permanent failure: the notification is at fault', async () => {
    const a = scripted('a', ['permanent']);
    const b = scripted('b', []);
    const chain = createProviderChain(
      [
        { provider: a.provider, breaker, concurrency: 10 },
        { provider: b.provider, breaker, concurrency: 10 },
      ],
      quiet,
    );
    const out = await chain.deliver(draftNotification(), signal);
    expect(out).toMatchObject({ ok: false, provider: 'a', charged: true });
    expect(b.calls).toEqual([]);
  });

  it("neither trips the breaker nor fails over on a receiver's fault, and charges the attempt", async () => {
    const a = scripted('a', ['receiver', 'receiver', 'receiver', 'receiver']);
    const b = scripted('b', []);
    const chain = createProviderChain(
      [
        { provider: a.provider, breaker, concurrency: 10 },
        { provider: b.provider, breaker, concurrency: 10 },
      ],
      quiet,
    );
    for (let i = 0; i < 4; i++) {
      const out = await chain.deliver(draftNotification(), signal);
      expect(out).toMatchObject({ ok: false, provider: 'a', charged: true });
    }
    // Twice the breaker's threshold, and the provider still takes the next notification.
    expect(chain.availableIn()).toBe(0);
    const next = draftNotification();
    expect(await chain.deliver(next, signal)).toMatchObject({ ok: true, provider: 'a' });
    expect(a.calls).toHaveLength(5);
    expect(b.calls).toEqual([]);
  });

  it('skips a provider whose breaker is open, and reports the wait when all are open', async () => {
    const c = clock();
    const a = scripted('a', ['transient', 'transient', 'transient']);
    const chain = createProviderChain(
      [{ provider: a.provider, breaker, concurrency: 10 }],
      quiet,
      c.now,
    );
    const first = await chain.deliver(draftNotification(), signal);
    expect(first).toMatchObject({ ok: false, charged: true });
    await chain.deliver(draftNotification(), signal);
    expect(chain.availableIn()).toBe(1000);
    const held = await chain.deliver(draftNotification(), signal);
    expect(held).toMatchObject({ ok: false, provider: null, charged: false });
    expect((held as { error: TransientDeliveryError }).error.retryAfterMs).toBe(1000);
    expect(a.calls).toHaveLength(2);

    // The probe after the cool-down fails too: it confirms the outage, it is not the
    // notification's fault, so it is not charged.
    c.advance(1000);
    expect(chain.availableIn()).toBe(0);
    const probe = await chain.deliver(draftNotification(), signal);
    expect(probe).toMatchObject({ ok: false, provider: 'a', charged: false });
    expect(a.calls).toHaveLength(3);
  });

  it('caps the calls in flight to a provider at its concurrency', async () => {
    let active = 0;
    let peak = 0;
    const releases: (() => void)[] = [];
    const slow: Provider = {
      name: 'slow',
      deliver: () =>
        new Promise((resolve) => {
          active += 1;
          peak = Math.max(peak, active);
          releases.push(() => {
            active -= 1;
            resolve({});
          });
        }),
    };
    const chain = createProviderChain([{ provider: slow, breaker, concurrency: 2 }], quiet);
    const all = Promise.all(
      Array.from({ length: 5 }, () => chain.deliver(draftNotification(), signal)),
    );
    for (let done = 0; done < 5; done++) {
      await expect.poll(() => releases.length).toBeGreaterThan(0);
      releases.shift()?.();
    }
    const results = await all;
    expect(results.every((r) => r.ok)).toBe(true);
    expect(peak).toBe(2);
  });
});
