import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import type { NotificationStore } from '../../src/domain/ports.js';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { openDatabase } from '../../src/infra/postgres/orm.js';
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
  it('plans a claim for the table as it is, not as it was when the claim was prepared', async () => {
    // One connection: every statement below runs where herald_claim was prepared.
    const own = await openDatabase(
      { url: db.url, poolSize: 1 },
      createLogger({ level: 'silent', role: 'test' }),
    );
    try {
      const small = createNotificationStore(own.pool);
      // Prepared and run while the table is small, more often than the five custom plans
      // PostgreSQL makes before it would cache a generic one.
      for (let i = 0; i < 8; i++) await small.claim(randomUUID(), 1, 30_000);
      const n = draft();
      await small.insert(n, null);
      // The table grows well past one page; nothing analyzes it (autovacuum may be off).
      await own.pool.query(
        `insert into notification (id, tenant_id, user_id, channel, priority, content, status,
           created_at, updated_at)
         select gen_random_uuid(), tenant_id, user_id, channel, priority, content, 'DELIVERED',
           created_at, updated_at
         from notification, generate_series(1, 20000) where id = $1`,
        [n.id],
      );
      const { rows } = await own.pool.query<{ 'QUERY PLAN': unknown }>(
        `explain (format json) execute herald_claim('{${n.id}}'::uuid[], '{1}'::int[],
           '{30000}'::float8[], '{null}'::text[], '{PENDING,RETRYING}'::text[])`,
      );
      const plan = JSON.stringify(rows[0]?.['QUERY PLAN']);
      expect(plan).toContain('"Relation Name":"notification"');
      expect(plan).not.toContain('"Node Type":"Seq Scan"');
    } finally {
      await own.close();
    }
  });

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

  it('stamps published_at in the claim, so the api’s later stamp writes nothing', async () => {
    const n = draft();
    await store.insert(n, null);
    const claim = await store.claim(n.id, 1, 30_000);
    expect(claim.claimed && claim.notification.publishedAt).toBeInstanceOf(Date);
    const xmin = async () =>
      (await db.pool.query<{ xmin: string }>('select xmin from notification where id = $1', [n.id]))
        .rows[0]?.xmin;
    const before = await xmin();
    await store.markPublished([{ id: n.id, generation: 1 }]);
    expect(await xmin()).toBe(before);
    // A row nobody claimed yet is stamped by markPublished.
    const queued = draft();
    await store.insert(queued, null);
    await store.markPublished([{ id: queued.id, generation: 1 }]);
    expect((await store.get('t1', queued.id))?.publishedAt).toBeInstanceOf(Date);
  });

  it('delivers an inline job in one step: PENDING -> DELIVERED, once', async () => {
    const n = draft({ channel: 'in_app', to: null });
    await store.insert(n, null);
    const [x, y] = await Promise.all([
      store.deliverInline(n.id, 1, 'in_app'),
      store.deliverInline(n.id, 1, 'in_app'),
    ]);
    expect([x.claimed, y.claimed].filter(Boolean)).toHaveLength(1);
    const loser = x.claimed ? y : x;
    expect(loser).toMatchObject({ claimed: false, current: { status: 'DELIVERED' } });
    const row = await store.get('t1', n.id);
    expect(row).toMatchObject({
      status: 'DELIVERED',
      version: 2,
      attempt: 1,
      provider: 'in_app',
      leaseUntil: null,
    });
    expect(row?.deliveredAt).toBeInstanceOf(Date);
    expect(row?.publishedAt).toBeInstanceOf(Date);
    const history = await store.history('t1', n.id);
    expect(history.map((e) => [e.status, e.version, e.provider])).toEqual([
      ['PENDING', 1, null],
      ['DELIVERED', 2, 'in_app'],
    ]);
    // Not for a newer generation's row, nor twice.
    const newer = draft({ channel: 'in_app', to: null });
    await store.insert(newer, null);
    expect(await store.deliverInline(newer.id, 2, 'in_app')).toMatchObject({
      claimed: false,
      current: { status: 'PENDING' },
    });
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
      .poll(async () => (await store.reclaimExpired(new Date(), 100, 6)).map((r) => r.id), {
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

  it('suppresses a scheduled row only at the version checked, and releases only the ids given', async () => {
    const due = { status: 'SCHEDULED' as const, sendAt: new Date(Date.now() - 1000) };
    const [optedOut, changed, kept, unchecked] = [draft(due), draft(due), draft(due), draft(due)];
    for (const n of [optedOut, changed, kept, unchecked]) {
      await store.insert({ ...n, statusReason: 'quiet hours 22:00–08:00 UTC' }, null);
    }
    const suppressed = await store.suppressScheduled([
      { id: optedOut.id, version: 1, reason: 'opted out of email (user preference)' },
      { id: changed.id, version: 2, reason: 'opted out of email (user preference)' },
    ]);
    expect(suppressed.map((r) => r.id)).toEqual([optedOut.id]);
    expect(suppressed[0]).toMatchObject({
      status: 'SUPPRESSED',
      version: 2,
      statusReason: 'opted out of email (user preference)',
    });
    expect((await store.history('t1', optedOut.id)).map((e) => [e.status, e.error])).toEqual([
      ['SCHEDULED', 'quiet hours 22:00–08:00 UTC'],
      ['SUPPRESSED', 'opted out of email (user preference)'],
    ]);

    const released = await store.releaseDue(new Date(), 100, [optedOut.id, changed.id, kept.id]);
    expect(released.map((r) => r.id).sort()).toEqual([changed.id, kept.id].sort());
    expect(released.every((r) => r.status === 'PENDING' && r.statusReason === null)).toBe(true);
    expect(await store.get('t1', unchecked.id)).toMatchObject({ status: 'SCHEDULED' });
    expect(await store.get('t1', optedOut.id)).toMatchObject({ status: 'SUPPRESSED' });
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

  describe('dead letters', () => {
    /** Inserts a notification and takes it through `failures` failed attempts. */
    async function failedAttempts(
      failures: number,
      last: 'RETRYING' | 'FAILED',
      overrides: Parameters<typeof draft>[0] = {},
    ) {
      const n = draft({ tenantId: 'dl', ...overrides });
      await store.insert(n, null);
      for (let i = 1; i <= failures; i++) {
        const claim = await store.claim(n.id, 1, 30_000);
        expect(claim.claimed).toBe(true);
        await store.complete(n.id, i, {
          status: i === failures ? last : 'RETRYING',
          provider: 'p',
          providerMessageId: null,
          error: `boom ${n.id}`,
          nextAttemptAt: null,
        });
      }
      return n;
    }

    it('lists a FAILED notification, replays it once with a fresh budget under a new generation', async () => {
      const n = await failedAttempts(3, 'FAILED', { channel: 'sms', to: '+15550001111' });
      const listed = await store.deadLetters('dl', {
        ids: null,
        channels: ['sms'],
        errorContains: `BOOM ${n.id}`,
        after: null,
        before: null,
        cursor: null,
        limit: 10,
      });
      expect(listed.map((r) => r.id)).toEqual([n.id]);
      expect(listed[0]?.deadLetteredAt).toBeInstanceOf(Date);

      const [first, second] = await Promise.all([
        store.replay('dl', [n.id]),
        store.replay('dl', [n.id]),
      ]);
      expect([...(first ?? []), ...(second ?? [])].map((r) => r.id)).toEqual([n.id]);
      const row = await store.get('dl', n.id);
      expect(row).toMatchObject({
        status: 'PENDING',
        generation: 2,
        attempt: 3,
        attemptFloor: 3,
        deadLetteredAt: null,
        template: null,
        statusReason: null,
        seenAt: null,
        readAt: null,
        archivedAt: null,
        publishedAt: null,
      });
      const history = await store.history('dl', n.id);
      expect(history.map((e) => [e.status, e.generation])).toEqual([
        ['PENDING', 1],
        ['PROCESSING', 1],
        ['RETRYING', 1],
        ['PROCESSING', 1],
        ['RETRYING', 1],
        ['PROCESSING', 1],
        ['FAILED', 1],
        ['PENDING', 2],
      ]);
      // The new generation's job claims it; an old job does too (generation <= row's).
      expect((await store.claim(n.id, 2, 30_000)).claimed).toBe(true);
    });

    it('pages the dead letters newest first, each exactly once', async () => {
      const tenant = 'dl-page';
      const ids: string[] = [];
      for (let i = 0; i < 7; i++)
        ids.push((await failedAttempts(1, 'FAILED', { tenantId: tenant })).id);
      const seen: string[] = [];
      let cursor: { deadLetteredAt: Date; id: string } | null = null;
      for (;;) {
        const page = await store.deadLetters(tenant, {
          ids: null,
          channels: [],
          errorContains: null,
          after: null,
          before: null,
          cursor,
          limit: 3,
        });
        seen.push(...page.map((r) => r.id));
        const last = page.at(-1);
        if (page.length < 3 || last === undefined || last.deadLetteredAt === null) break;
        cursor = { deadLetteredAt: last.deadLetteredAt, id: last.id };
      }
      expect([...seen].sort()).toEqual([...ids].sort());
    });

    it('purges a dead letter from the list but leaves it FAILED', async () => {
      const n = await failedAttempts(1, 'FAILED');
      expect((await store.purgeDeadLetters('dl', [n.id])).map((r) => r.id)).toEqual([n.id]);
      expect(await store.purgeDeadLetters('dl', [n.id])).toEqual([]);
      expect(await store.get('dl', n.id)).toMatchObject({ status: 'FAILED', deadLetteredAt: null });
    });

    it('does not charge an attempt that reached no provider to the budget', async () => {
      const n = draft({ tenantId: 'dl' });
      await store.insert(n, null);
      await store.claim(n.id, 1, 30_000);
      await store.complete(n.id, 1, {
        status: 'RETRYING',
        provider: null,
        providerMessageId: null,
        error: 'circuit open',
        nextAttemptAt: null,
        counted: false,
      });
      expect(await store.get('dl', n.id)).toMatchObject({ attempt: 1, attemptFloor: 1 });
    });

    it('fails a lost worker’s last attempt into the dead letters, and retries an earlier one', async () => {
      const spent = await failedAttempts(2, 'RETRYING');
      const early = await failedAttempts(1, 'RETRYING');
      for (const n of [spent, early]) expect((await store.claim(n.id, 1, 1)).claimed).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
      const changed = await store.reclaimExpired(new Date(Date.now() + 1000), 100, 3);
      const byId = new Map(changed.map((r) => [r.id, r]));
      expect(byId.get(spent.id)).toMatchObject({ status: 'FAILED', attempt: 3 });
      expect(byId.get(spent.id)?.deadLetteredAt).toBeInstanceOf(Date);
      expect(byId.get(early.id)).toMatchObject({ status: 'RETRYING', attempt: 2, generation: 2 });
    });

    it('settles a job the queue gave up on: dead letter when spent, new generation when not', async () => {
      const spent = await failedAttempts(3, 'RETRYING');
      const fresh = await failedAttempts(1, 'RETRYING');
      const delivered = draft({ tenantId: 'dl' });
      await store.insert(delivered, null);
      await store.claim(delivered.id, 1, 30_000);
      await store.complete(delivered.id, 1, {
        status: 'DELIVERED',
        provider: 'p',
        providerMessageId: 'm',
        error: null,
        nextAttemptAt: null,
      });
      expect(await store.settleMaxDelivered(spent.id, 3)).toMatchObject({
        action: 'failed',
        notification: { status: 'FAILED' },
      });
      expect(await store.settleMaxDelivered(fresh.id, 3)).toMatchObject({
        action: 'revived',
        notification: { status: 'RETRYING', generation: 2, publishedAt: null },
      });
      expect(await store.settleMaxDelivered(delivered.id, 3)).toEqual({
        action: 'none',
        notification: null,
      });
    });
  });
});
