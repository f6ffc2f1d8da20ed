/**
 * SendBatch: many Sends in one call. Each item runs the whole Send use case on its own (validation,
 * recipient, rate limit, idempotency, insert, publish), so a batch gets every rule a Send has, and
 * one item's failure is that item's result, never the batch's.
 */
import { ValidationError } from './errors.js';
import type { SendResult } from './notifications.js';

/** Items a batch may hold. */
export const BATCH_MAX_ITEMS = 1_000;

/**
 * Items in flight at once. Enough that the store's insert batcher finds many rows waiting while a
 * statement runs (1,000 items take a few dozen multi-row inserts, not 1,000), few enough that
 * one batch cannot fill the pg pool's and Redis's queues ahead of everyone else's Sends.
 */
export const BATCH_CONCURRENCY = 100;

/** One item's outcome: its Send's result, or what its Send threw. */
export type BatchItemResult = { ok: true; result: SendResult } | { ok: false; error: unknown };

/**
 * Sends every item with `sendOne`, at most BATCH_CONCURRENCY at a time, and returns one outcome
 * per item in item order. A ValidationError of an item has its field paths prefixed with
 * `items[<index>].`, so they name the field in the batch request. Stops starting items once
 * `signal` aborts (the caller left or its deadline passed) and rejects with its reason; items
 * already started finish, and their idempotency keys make a retried batch replay them.
 */
export async function sendBatch<T>(
  items: readonly T[],
  sendOne: (item: T) => Promise<SendResult>,
  signal?: AbortSignal,
): Promise<BatchItemResult[]> {
  if (items.length === 0 || items.length > BATCH_MAX_ITEMS) {
    throw new ValidationError([
      {
        field: 'items',
        description: `must hold 1 to ${BATCH_MAX_ITEMS} items (got ${items.length})`,
      },
    ]);
  }
  const results: BatchItemResult[] = new Array<BatchItemResult>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      const i = next++;
      try {
        results[i] = { ok: true, result: await sendOne(items[i] as T) };
      } catch (error) {
        results[i] = { ok: false, error: inItem(error, i) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, items.length) }, lane));
  return results;
}

/** The error with a ValidationError's fields named from the batch request. */
function inItem(error: unknown, index: number): unknown {
  if (!(error instanceof ValidationError)) return error;
  return new ValidationError(
    error.violations.map((v) => ({ ...v, field: `items[${index}].${v.field}` })),
  );
}
