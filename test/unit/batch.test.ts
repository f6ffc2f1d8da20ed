/**
 * sendBatch: one outcome per item in item order, validation errors renamed into the batch,
 * other errors untouched, at most BATCH_CONCURRENCY items in flight, the 1-to-1,000 rule, and no
 * new item started once the caller has gone.
 */
import { describe, expect, it } from 'vitest';
import { BATCH_CONCURRENCY, sendBatch } from '../../src/domain/batch.js';
import { NotFoundError, ValidationError } from '../../src/domain/errors.js';
import type { SendResult } from '../../src/domain/notifications.js';
import { draftNotification } from '../support/fixtures.js';

const sent = (userId: string): SendResult => ({
  notification: draftNotification({ userId }),
  replayed: false,
  rateLimit: null,
});

/** Resolves after other pending callbacks have run, so items finish out of order. */
const later = (turns: number) =>
  turns === 0
    ? Promise.resolve()
    : new Promise<void>((r) => setImmediate(() => void later(turns - 1).then(r)));

describe('sendBatch', () => {
  it('answers in item order when items finish out of order, naming bad fields from the batch', async () => {
    const items = ['a', 'bad', 'c', 'gone', 'e'];
    const results = await sendBatch(items, async (u) => {
      await later(items.length - items.indexOf(u));
      if (u === 'bad') {
        throw new ValidationError([
          { field: 'user_id', description: 'is required' },
          { field: 'content.subject', description: 'is required for email' },
        ]);
      }
      if (u === 'gone') throw new NotFoundError('template t1');
      return sent(u);
    });
    expect(results.map((r) => (r.ok ? r.result.notification.userId : 'error'))).toEqual([
      'a',
      'error',
      'c',
      'error',
      'e',
    ]);
    const bad = results[1];
    expect(bad?.ok === false && bad.error).toBeInstanceOf(ValidationError);
    expect(bad?.ok === false && (bad.error as ValidationError).violations).toEqual([
      { field: 'items[1].user_id', description: 'is required' },
      { field: 'items[1].content.subject', description: 'is required for email' },
    ]);
    expect(bad?.ok === false && (bad.error as ValidationError).message).toBe(
      'items[1].user_id: is required; items[1].content.subject: is required for email',
    );
    const gone = results[3];
    expect(gone?.ok === false && gone.error).toBeInstanceOf(NotFoundError);
  });

  it('counts an error thrown before the send starts (a mapping error) as the item’s', async () => {
    const results = await sendBatch([1, 2], (n) => {
      if (n === 1) throw new ValidationError([{ field: 'template', description: 'bad' }]);
      return Promise.resolve(sent('u'));
    });
    expect(results.map((r) => r.ok)).toEqual([false, true]);
    expect(results[0]?.ok === false && (results[0].error as ValidationError).violations).toEqual([
      { field: 'items[0].template', description: 'bad' },
    ]);
  });

  it(`keeps at most ${BATCH_CONCURRENCY} items in flight`, async () => {
    let inFlight = 0;
    let most = 0;
    await sendBatch(
      Array.from({ length: 1_000 }, (_, i) => i),
      async (i) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await later(i % 3);
        inFlight -= 1;
        return sent(`u${i}`);
      },
    );
    expect(most).toBe(BATCH_CONCURRENCY);
  });

  it('refuses no items and more than 1,000, naming items', async () => {
    for (const n of [0, 1_001]) {
      const err = await sendBatch(
        Array.from({ length: n }, () => 'u'),
        (u) => Promise.resolve(sent(u)),
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).violations).toEqual([
        { field: 'items', description: `must hold 1 to 1000 items (got ${n})` },
      ]);
    }
  });

  it('starts no new item once the signal aborts', async () => {
    const abort = new AbortController();
    const started: number[] = [];
    const err = await sendBatch(
      Array.from({ length: 1_000 }, (_, i) => i),
      async (i) => {
        started.push(i);
        if (i === 150) abort.abort(new Error('caller left'));
        await later(1);
        return sent(`u${i}`);
      },
      abort.signal,
    ).catch((e: unknown) => e);
    expect((err as Error).message).toBe('caller left');
    // Items are picked one after another, and every pick checks the signal first.
    expect(started).toHaveLength(151);
  });
});
