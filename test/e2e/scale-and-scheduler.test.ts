/**
 * Several processes sharing the work: two `herald worker` processes on one channel deliver 10,000
 * notifications, each exactly once; and RELIABILITY R4, a scheduler killed mid-sweep (half of its
 * rows published, none stamped) loses nothing and duplicates nothing, because a re-publish of the
 * same generation is dropped by JetStream's message-id dedupe.
 */
import { readFileSync } from 'node:fs';
import { Channel, createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { createCleanups } from '../support/cleanups.js';
import { draftNotification } from '../support/fixtures.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import { killAll, spawnHerald } from '../support/processes.js';

const cleanups = createCleanups();
afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

/** Delivery lines of the log provider: notification id and the delivering process. */
function deliveryLines(t: TestHerald): { notificationId: string; pid: number }[] {
  let text = '';
  try {
    text = readFileSync(t.logFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { notificationId: string; pid: number });
}

async function countStatus(t: TestHerald, status: string): Promise<number> {
  const { rows } = await t.db.pool.query<{ n: string }>(
    'select count(*) as n from notification where status = $1',
    [status],
  );
  return Number(rows[0]?.n);
}

describe('work shared between processes', () => {
  it('delivers 10,000 notifications through two worker processes, each exactly once', async () => {
    const t = await startTestHerald({ roles: ['api', 'scheduler'] });
    cleanups.add(() => t.stop());
    const env = { ...process.env, ...t.env, HERALD_WORKER_CONCURRENCY: '64' };
    const workers = [
      spawnHerald(['worker', '--channels', 'email'], env),
      spawnHerald(['worker', '--channels', 'email'], env),
    ];
    await Promise.all(workers.map((w) => w.waitFor(/herald worker: running/)));
    const client = createHeraldClient({ baseUrl: t.h2cUrl });
    cleanups.add(() => client.close());

    const total = 10_000;
    const accepted: string[] = [];
    for (let i = 0; i < total; i += 200) {
      const batch = await Promise.all(
        Array.from({ length: 200 }, (_, j) =>
          client.send({
            userId: `u-${(i + j) % 97}`,
            channel: Channel.EMAIL,
            to: 'a@example.com',
            content: { subject: 's', body: `n${i + j}` },
          }),
        ),
      );
      accepted.push(...batch.map((r) => r.id));
    }
    await expect
      .poll(() => countStatus(t, 'DELIVERED'), { timeout: 120_000, interval: 500 })
      .toBe(total);

    const lines = deliveryLines(t);
    const ledger = await reconcileLedger(
      t.db.pool,
      accepted,
      lines.map((l) => l.notificationId),
    );
    printLedger('two workers, 10k', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
    expect(lines).toHaveLength(total);
    // Both processes took part.
    const pids = new Set(lines.map((l) => l.pid));
    expect(pids).toEqual(new Set(workers.map((w) => w.proc.pid)));
  });

  it('loses and duplicates nothing when the scheduler is killed mid-sweep (R4)', async () => {
    const t = await startTestHerald({ roles: [] });
    cleanups.add(() => t.stop());
    // Accepted while NATS was away: stored, never published — the outbox sweep's work.
    const store = createNotificationStore(t.db.pool);
    const rows = Array.from({ length: 400 }, (_, i) =>
      draftNotification({ tenantId: t.config.tenant, content: { subject: 's', body: `r4 ${i}` } }),
    );
    await Promise.all(rows.map((n) => store.insert(n, null)));
    const accepted = rows.map((n) => n.id);

    const env = { ...process.env, ...t.env, HERALD_OUTBOX_GRACE_MS: '0' };
    const crashing = spawnHerald(['scheduler'], { ...env, HERALD_TEST_CRASH_AT: 'mid-sweep' });
    expect(await crashing.exited, crashing.output()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await countStatus(t, 'PENDING')).toBe(rows.length);

    spawnHerald(['scheduler'], env);
    spawnHerald(['worker', '--channels', 'email'], env);
    await expect
      .poll(() => countStatus(t, 'DELIVERED'), { timeout: 60_000, interval: 200 })
      .toBe(rows.length);
    const ledger = await reconcileLedger(t.db.pool, accepted, t.deliveries());
    printLedger('R4 scheduler killed mid-sweep', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
    expect(t.deliveries()).toHaveLength(rows.length);
  });
});
