/**
 * A channel's providers in failover order, each behind its circuit breaker and concurrency cap.
 * An attempt goes to the first provider whose breaker lets it through; a transient failure fails
 * over to the next one within the same attempt; a permanent failure does not (the notification
 * itself is at fault), nor does a transient one of a receiver the caller chose (receiverFault). When every breaker is open nobody is called, and the caller learns how
 * long to wait — such an attempt must not count against the notification's retry budget.
 */
import { isPermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import type { Notification } from '../domain/notification.js';
import type { Logger, Provider } from '../domain/ports.js';
import {
  createCircuitBreaker,
  type BreakerOptions,
  type CircuitBreaker,
} from './circuit-breaker.js';

export interface ChainEntry {
  provider: Provider;
  breaker: BreakerOptions;
  /** Calls in flight at once to this provider (across the process's workers of the channel). */
  concurrency: number;
}

export type ChainOutcome =
  | { ok: true; provider: string; providerMessageId: string | null }
  /**
   * `charged` is false when the failure says nothing about the notification: no provider was
   * called (every breaker open), or the only call was a half-open breaker's probe confirming an
   * outage. Such an attempt must not use up the notification's retry budget.
   */
  | { ok: false; provider: string | null; error: unknown; charged: boolean };

export interface ProviderChain {
  readonly names: readonly string[];
  /** The provider's name when the chain is one inline provider (see Provider.inline), else null. */
  readonly inline: string | null;
  /** 0 when some provider would take a call now; else ms until one would. */
  availableIn(): number;
  deliver(notification: Notification, signal: AbortSignal): Promise<ChainOutcome>;
  close(): Promise<void>;
}

interface Slot {
  provider: Provider;
  breaker: CircuitBreaker;
  limit: Semaphore;
}

export function createProviderChain(
  entries: readonly ChainEntry[],
  logger: Logger,
  now: () => number = Date.now,
): ProviderChain {
  if (entries.length === 0) throw new Error('a provider chain needs at least one provider');
  const slots: Slot[] = entries.map((e) => ({
    provider: e.provider,
    breaker: createCircuitBreaker(e.breaker, now, (state) => {
      const fields = { provider: e.provider.name, state };
      if (state === 'closed') logger.info(fields, 'circuit breaker closed');
      else logger.warn(fields, `circuit breaker ${state}`);
    }),
    limit: createSemaphore(e.concurrency),
  }));

  return {
    names: slots.map((s) => s.provider.name),
    inline:
      slots.length === 1 && slots[0]?.provider.inline === true ? slots[0].provider.name : null,
    availableIn: () => Math.min(...slots.map((s) => s.breaker.waitMs())),
    async deliver(n, signal) {
      let last: ChainOutcome | null = null;
      let charged = false;
      let wait = Infinity;
      for (const slot of slots) {
        if (signal.aborted) break;
        const w = slot.breaker.acquire();
        if (w > 0) {
          wait = Math.min(wait, w);
          continue;
        }
        const name = slot.provider.name;
        const probe = slot.breaker.state() === 'half-open';
        try {
          const result = await slot.limit.run(() => slot.provider.deliver(n, signal));
          slot.breaker.success();
          return { ok: true, provider: name, providerMessageId: result.providerMessageId ?? null };
        } catch (error) {
          // The notification's own fault, or its receiver's: the provider is not in question.
          if (
            isPermanentDeliveryError(error) ||
            (error instanceof TransientDeliveryError && error.receiverFault)
          ) {
            slot.breaker.neutral();
            return { ok: false, provider: name, error, charged: true };
          }
          slot.breaker.failure();
          charged ||= !probe;
          last = { ok: false, provider: name, error, charged };
          if (slots.length > 1) {
            logger.warn(
              { notificationId: n.id, provider: name, err: (error as Error).message },
              'provider failed; trying the next one',
            );
          }
        }
      }
      if (last !== null) return last;
      return {
        ok: false,
        provider: null,
        charged: false,
        error: new TransientDeliveryError(
          `every provider is unavailable (circuit open: ${slots.map((s) => s.provider.name).join(', ')})`,
          { retryAfterMs: Number.isFinite(wait) ? wait : undefined },
        ),
      };
    },
    async close() {
      await Promise.allSettled(slots.map((s) => s.provider.close?.() ?? Promise.resolve()));
    },
  };
}

interface Semaphore {
  run<T>(task: () => Promise<T>): Promise<T>;
}

function createSemaphore(limit: number): Semaphore {
  let active = 0;
  const waiting: (() => void)[] = [];
  return {
    async run(task) {
      if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      else active += 1;
      try {
        return await task();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else active -= 1;
      }
    },
  };
}
