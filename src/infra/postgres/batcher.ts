/**
 * Turns many concurrent single-item calls into few multi-row statements. Calls wait for the end of
 * the current event-loop turn (setImmediate), so those arriving together — one socket read often
 * carries many requests — share a statement even when a slot is free; calls that arrive while
 * `maxConcurrent` batches are running queue up and go together in the next batch, up to `maxSize`
 * items.
 */
export interface BatcherOptions {
  maxSize: number;
  maxConcurrent: number;
}

export type Batcher<I, O> = (item: I) => Promise<O>;

/** `run` receives the items and must return one result per item, in the same order. */
export function createBatcher<I, O>(
  run: (items: I[]) => Promise<O[]>,
  options: BatcherOptions,
): Batcher<I, O> {
  interface Pending {
    item: I;
    resolve: (o: O) => void;
    reject: (e: unknown) => void;
  }
  const queue: Pending[] = [];
  let running = 0;
  let pumpScheduled = false;

  function pump(): void {
    while (running < options.maxConcurrent && queue.length > 0) {
      const batch = queue.splice(0, options.maxSize);
      running += 1;
      // settle() never rejects: every failure is delivered to the callers it belongs to.
      void settle(batch).finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  async function runChecked(batch: Pending[]): Promise<O[]> {
    const results = await run(batch.map((p) => p.item));
    if (results.length !== batch.length) {
      throw new Error(`batch returned ${results.length} results for ${batch.length} items`);
    }
    return results;
  }

  /**
   * Runs a batch; when it fails, runs its items one by one, so one bad item (a row the database
   * refuses) fails only its own caller and never the others batched with it.
   */
  async function settle(batch: Pending[]): Promise<void> {
    try {
      const results = await runChecked(batch);
      batch.forEach((p, i) => p.resolve(results[i] as O));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]?.reject(err);
        return;
      }
      for (const p of batch) {
        await runChecked([p]).then(
          ([result]) => p.resolve(result as O),
          (e: unknown) => p.reject(e),
        );
      }
    }
  }

  return (item: I) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (pumpScheduled) return;
      pumpScheduled = true;
      setImmediate(() => {
        pumpScheduled = false;
        pump();
      });
    });
}
