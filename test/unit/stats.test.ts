/**
 * countStats: the window's defaults and bounds, every violation named, and the rows as the store
 * counted them, empty pairs left out, ordered by channel then status.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/domain/errors.js';
import type { StatsQuery } from '../../src/domain/ports.js';
import { countStats, STATS_MAX_WINDOW_MS, type StatsInput } from '../../src/domain/stats.js';

const NOW = new Date('2026-11-21T12:00:00.000Z');
const DAY = 86_400_000;
const at = (ms: number) => new Date(NOW.getTime() + ms);

/** A store that answers `rows` and records the queries it got. */
function storeOf(rows: Awaited<ReturnType<typeof countStats>>['rows'] = []) {
  const queries: StatsQuery[] = [];
  return {
    queries,
    countByChannelAndStatus: (_tenant: string, q: StatsQuery) => {
      queries.push(q);
      return Promise.resolve(rows);
    },
  };
}

const input = (over: Partial<StatsInput> = {}): StatsInput => ({
  createdAfter: null,
  createdBefore: null,
  channels: [],
  ...over,
});

async function violations(i: StatsInput) {
  const err = await countStats(storeOf(), 't1', i, NOW).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ValidationError);
  return (err as ValidationError).violations;
}

describe('countStats', () => {
  it('counts the day before now by default, and up to now from a given start', async () => {
    const store = storeOf();
    const s = await countStats(store, 't1', input(), NOW);
    expect([s.createdAfter, s.createdBefore]).toEqual([at(-DAY), NOW]);
    await countStats(store, 't1', input({ createdAfter: at(-3 * DAY) }), NOW);
    await countStats(store, 't1', input({ createdBefore: at(-DAY) }), NOW);
    expect(store.queries.map((q) => [q.createdAfter, q.createdBefore])).toEqual([
      [at(-DAY), NOW],
      [at(-3 * DAY), NOW],
      [at(-2 * DAY), at(-DAY)],
    ]);
  });

  it('accepts a window of exactly the maximum and refuses a millisecond more', async () => {
    const max = input({ createdAfter: at(-STATS_MAX_WINDOW_MS), createdBefore: NOW });
    await expect(countStats(storeOf(), 't1', max, NOW)).resolves.toMatchObject({ total: 0 });
    expect(await violations({ ...max, createdAfter: at(-STATS_MAX_WINDOW_MS - 1) })).toEqual([
      { field: 'created_after', description: 'must be at most 31 days before created_before' },
    ]);
    expect(await violations(input({ createdAfter: at(-32 * DAY) }))).toEqual([
      {
        field: 'created_after',
        description: 'must be at most 31 days before created_before (which defaults to now)',
      },
    ]);
  });

  it('refuses an empty or inverted window', async () => {
    for (const after of [NOW, at(1)]) {
      expect(await violations(input({ createdAfter: after, createdBefore: NOW }))).toEqual([
        { field: 'created_before', description: 'must be after created_after' },
      ]);
    }
    expect(await violations(input({ createdAfter: at(DAY) }))).toEqual([
      {
        field: 'created_before',
        description: 'defaults to now, so created_after must be in the past',
      },
    ]);
  });

  it('orders rows by channel then status, drops empty ones and sums the rest', async () => {
    const s = await countStats(
      storeOf([
        { channel: 'sms', status: 'FAILED', count: 2 },
        { channel: 'email', status: 'SUPPRESSED', count: 1 },
        { channel: 'sms', status: 'PENDING', count: 0 },
        { channel: 'email', status: 'DELIVERED', count: 5 },
        { channel: 'sms', status: 'DELIVERED', count: 3 },
      ]),
      't1',
      input(),
      NOW,
    );
    expect(s.rows.map((r) => `${r.channel}/${r.status}/${r.count}`)).toEqual([
      'email/DELIVERED/5',
      'email/SUPPRESSED/1',
      'sms/DELIVERED/3',
      'sms/FAILED/2',
    ]);
    expect(s.total).toBe(11);
  });
});
