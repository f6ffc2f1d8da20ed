/**
 * A circuit breaker per provider. After `failures` consecutive transient failures it opens: no
 * call goes to the provider for `cooldownMs`. Then one probe is let through (half-open); its
 * success closes the breaker, its failure opens it for another cool-down. Permanent failures are
 * the notification's fault, not the provider's, and count as neither failure nor success.
 */

export interface BreakerOptions {
  /** Consecutive transient failures that open the breaker. */
  failures: number;
  /** How long an open breaker keeps calls away, ms. */
  cooldownMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreaker {
  /** 0 when a call may go now (and, half-open, takes the probe); else ms until it may. */
  acquire(): number;
  /** Ms until a call may go, without taking the probe. */
  waitMs(): number;
  success(): void;
  failure(): void;
  /** Releases a probe taken by acquire() for a call that ended neither way (permanent error). */
  neutral(): void;
  state(): BreakerState;
}

export function createCircuitBreaker(
  options: BreakerOptions,
  now: () => number = Date.now,
  onChange: (state: BreakerState) => void = () => undefined,
): CircuitBreaker {
  let consecutive = 0;
  let openUntil = 0;
  let probing = false;
  let current: BreakerState = 'closed';
  const set = (s: BreakerState) => {
    if (s !== current) {
      current = s;
      onChange(s);
    }
  };
  // While the probe is out, others wait a fraction of the cool-down before looking again.
  const probeWait = () => Math.max(1, Math.min(1_000, options.cooldownMs));

  const breaker: CircuitBreaker = {
    waitMs() {
      if (current === 'closed') return 0;
      if (current === 'open') return Math.max(0, openUntil - now());
      return probing ? probeWait() : 0;
    },
    acquire() {
      if (current === 'open' && now() >= openUntil) set('half-open');
      if (current === 'closed') return 0;
      if (current === 'open') return openUntil - now();
      if (probing) return probeWait();
      probing = true;
      return 0;
    },
    success() {
      consecutive = 0;
      probing = false;
      set('closed');
    },
    failure() {
      probing = false;
      consecutive += 1;
      if (current === 'half-open' || consecutive >= options.failures) {
        openUntil = now() + options.cooldownMs;
        set('open');
      }
    },
    neutral() {
      probing = false;
    },
    state: () => current,
  };
  return breaker;
}
