import { describe, expect, it } from 'vitest';
import { createBatcher } from '../../src/infra/postgres/batcher.js';

/** A batcher doubling numbers that records the batches it ran; `gate` holds a batch open. */
function recorder(options = { maxSize: 100, maxConcurrent: 1 }) {
  const batches: number[][] = [];
  let open: (() => void) | null = null;
  const call = createBatcher<number, number>(async (items) => {
    batches.push(items);
    if (items.includes(-1)) await new Promise<void>((resolve) => (open = resolve));
    return items.map((i) => i * 2);
  }, options);
  return { call, batches, release: () => open?.() };
}

describe('createBatcher', () => {
  it('runs the calls of one event-loop turn as one batch, even with a slot free', async () => {
    const { call, batches } = recorder();
    const results = await Promise.all([1, 2, 3].map((i) => call(i)));
    expect(results).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('queues calls arriving while the slots are busy into the next batch, up to maxSize', async () => {
    const { call, batches, release } = recorder({ maxSize: 2, maxConcurrent: 1 });
    const first = call(-1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([[-1]]);
    const later = [4, 5, 6].map((i) => call(i));
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toHaveLength(1);
    release();
    expect(await Promise.all([first, ...later])).toEqual([-2, 8, 10, 12]);
    expect(batches).toEqual([[-1], [4, 5], [6]]);
  });

  it('runs a call of a later turn without waiting for more calls', async () => {
    const { call, batches } = recorder();
    expect(await call(7)).toBe(14);
    expect(await call(8)).toBe(16);
    expect(batches).toEqual([[7], [8]]);
  });
});
