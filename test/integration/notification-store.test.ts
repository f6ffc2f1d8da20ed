import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotificationStore } from '../../src/domain/ports.js';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { draftNotification } from '../support/fixtures.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let store: NotificationStore;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createNotificationStore(db.pool, { concurrency: 1, batchSize: 50 });
});

afterAll(async () => {
  await db.drop();
});

const draft = draftNotification;

describe('NotificationStore', () => {
  it('stores each of many concurrent inserts with its first history event', async () => {
    const drafts = Array.from({ length: 120 }, () => draft());
    const results = await Promise.all(drafts.map((d) => store.insert(d, null)));
    expect(results.every((r) => r.created)).toBe(true);
    expect(results.map((r) => r.notification.id)).toEqual(drafts.map((d) => d.id));
    const { rows } = await db.pool.query<{ n: string }>(
      'select count(*) as n from notification_event where notification_id = any($1::uuid[])',
      [drafts.map((d) => d.id)],
    );
    expect(Number(rows[0]?.n)).toBe(120);
  });

  it('returns the existing row and its hash when an idempotency key is reused', async () => {
    const first = draft({ idempotencyKey: 'k-1' });
    const again = draft({ idempotencyKey: 'k-1' });
    const [a, b] = await Promise.all([store.insert(first, 'h1'), store.insert(again, 'h2')]);
    const created = [a, b].filter((r) => r?.created);
    expect(created).toHaveLength(1);
    const replay = [a, b].find((r) => !r?.created);
    expect(replay).toMatchObject({ created: false, requestHash: 'h1' });
    expect(replay?.notification.id).toBe(first.id);
  });

  it('lets only one of two concurrent claims win and fences the loser', async () => {
    const n = draft();
    await store.insert(n, null);
    const [x, y] = await Promise.all([store.claim(n.id, 1, 30_000), store.claim(n.id, 1, 30_000)]);
    expect([x.claimed, y.claimed].filter(Boolean)).toHaveLength(1);
    const winner = x.claimed ? x.notification : y.claimed ? y.notification : null;
    expect(winner).toMatchObject({ status: 'PROCESSING', attempt: 1, version: 2 });
    // A completion carrying a stale attempt number changes nothing.
    const stale = await store.complete(n.id, 0, {
      status: 'DELIVERED',
      provider: 'log',
      providerMessageId: null,
      error: null,
      nextAttemptAt: null,
    });
    expect(stale).toBeNull();
    const done = await store.complete(n.id, 1, {
      status: 'DELIVERED',
      provider: 'log',
      providerMessageId: 'p-1',
      error: null,
      nextAttemptAt: null,
    });
    expect(done).toMatchObject({ status: 'DELIVERED', version: 3, providerMessageId: 'p-1' });
    const history = await store.history('t1', n.id);
    expect(history.map((e) => e.status)).toEqual(['PENDING', 'PROCESSING', 'DELIVERED']);
  });

  it('lets a job of an older generation claim a waiting row, but not a newer one', async () => {
    const n = draft();
    await store.insert(n, null);
    const newer = await store.claim(n.id, 2, 30_000);
    expect(newer).toMatchObject({ claimed: false, current: { status: 'PENDING', generation: 1 } });
    const older = await store.claim(n.id, 0, 30_000);
    expect(older).toMatchObject({ claimed: true, notification: { status: 'PROCESSING' } });
  });

  it('reclaims an expired lease under a new generation, unpublished', async () => {
    const n = draft();
    await store.insert(n, null);
    await store.markPublished([{ id: n.id, generation: 1 }]);
    await store.claim(n.id, 1, 1);
    await expect
      .poll(async () => (await store.reclaimExpired(new Date(), 100)).map((r) => r.id), {
        timeout: 5_000,
      })
      .toContain(n.id);
    const row = await store.get('t1', n.id);
    expect(row).toMatchObject({ status: 'RETRYING', generation: 2, publishedAt: null });
    const unpublished = await store.unpublished(new Date(Date.now() + 1000), 1000);
    expect(unpublished.map((r) => r.id)).toContain(n.id);
  });

  it('hides another tenant’s rows when reading', async () => {
    const n = draft({ tenantId: 't-other' });
    await store.insert(n, null);
    expect(await store.get('t1', n.id)).toBeNull();
    expect(await store.history('t1', n.id)).toEqual([]);
    expect(await store.cancel('t1', n.id)).toBeNull();
  });

  it('releases a due scheduled notification to PENDING', async () => {
    const n = draft({ status: 'SCHEDULED', sendAt: new Date(Date.now() - 1000) });
    await store.insert(n, null);
    const released = await store.releaseDue(new Date(), 100);
    expect(released.map((r) => r.id)).toContain(n.id);
    expect(await store.get('t1', n.id)).toMatchObject({ status: 'PENDING', version: 2 });
  });

  it('gives a published row no worker picked up a new, unpublished generation when it is stale', async () => {
    const lost = draft();
    const unpublished = draft();
    for (const n of [lost, unpublished]) await store.insert(n, null);
    await store.markPublished([{ id: lost.id, generation: 1 }]);
    const fresh = draft();
    await store.insert(fresh, null);
    const { rows } = await db.pool.query<{ at: Date }>('select now() as at');
    const cutoff = rows[0]?.at as Date;
    await store.markPublished([{ id: fresh.id, generation: 1 }]);

    // Published before the cut-off: lost; published after it: still fresh.
    const revived = await store.reviveStale(cutoff, 100);

    expect(revived.map((r) => r.id)).toContain(lost.id);
    expect(revived.map((r) => r.id)).not.toContain(fresh.id);
    expect(revived.map((r) => r.id)).not.toContain(unpublished.id);
    expect(await store.get('t1', lost.id)).toMatchObject({
      status: 'PENDING',
      generation: 2,
      version: 1,
      publishedAt: null,
    });
  });
});
