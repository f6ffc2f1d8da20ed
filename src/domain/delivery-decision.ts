/**
 * The one place that turns the outcome of a delivery attempt into what happens next: the status
 * to record and what to tell the queue (ack, nak with a delay, or term).
 */
import { HeraldError, isPermanentDeliveryError } from './errors.js';

export interface RetryPolicy {
  /** First backoff step, ms. */
  baseMs: number;
  /** Growth per attempt. */
  factor: number;
  /** Largest backoff, ms. */
  capMs: number;
  /** Attempts before giving up (the first attempt counts). */
  maxAttempts: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseMs: 1_000,
  factor: 2,
  capMs: 300_000,
  maxAttempts: 6,
};

export type DeliveryDecision =
  | { status: 'DELIVERED'; action: 'ack' }
  | { status: 'RETRYING'; action: 'nak'; delayMs: number; error: string }
  | { status: 'FAILED'; action: 'term'; error: string };

/**
 * Decides the fate of attempt number `attempt` (1-based) that ended with `error` (null on
 * success). Transient errors — provider timeouts, 5xx, 429, and anything unexpected, which may be
 * our own dependency failing — are retried with exponential backoff and full jitter; a provider's
 * Retry-After wins. Permanent errors, and attempts exhausted, fail.
 */
export function decideDelivery(
  error: unknown,
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): DeliveryDecision {
  if (error === null || error === undefined) return { status: 'DELIVERED', action: 'ack' };
  const message = describeError(error);
  if (isPermanentDeliveryError(error) || attempt >= policy.maxAttempts) {
    return { status: 'FAILED', action: 'term', error: message };
  }
  const retryAfterMs =
    error instanceof HeraldError && error.kind === 'transient_delivery'
      ? (error as { retryAfterMs?: number }).retryAfterMs
      : undefined;
  const delayMs = retryAfterMs ?? backoffMs(attempt, policy, random);
  return { status: 'RETRYING', action: 'nak', delayMs, error: message };
}

/** Full jitter: uniform in [0, min(cap, base * factor^(attempt-1))]. */
export function backoffMs(attempt: number, policy: RetryPolicy, random: () => number): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * policy.factor ** Math.max(0, attempt - 1));
  return Math.round(random() * ceiling);
}

function describeError(error: unknown): string {
  if (error instanceof HeraldError) return error.message;
  if (error instanceof Error) return `unexpected error: ${error.message}`;
  return 'unexpected error';
}
