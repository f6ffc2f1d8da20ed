/**
 * Graceful shutdown of `herald all` (DESIGN §10): SIGTERM stops intake, finishes what is in
 * flight, closes connections and exits 0; nothing accepted before the signal is lost.
 */
import { randomUUID } from 'node:crypto';
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCleanups } from '../support/cleanups.js';
import { startHttpFake } from '../support/fakes/http-fake.js';
import { startTestHerald } from '../support/herald.js';
import { killAll, spawnHerald, spawnHeraldAll } from '../support/processes.js';

const cleanups = createCleanups();

afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

describe('herald all', () => {
  it('exits 0 and loses nothing when stopped with SIGTERM under load', async () => {
    // An in-process Herald with no roles: its database and NATS layout, and a worker for later.
    const t = await startTestHerald({ roles: [] });
    cleanups.add(() => t.stop());
    const { child, url } = await spawnHeraldAll(t.env);
    const client = createHeraldClient({ baseUrl: url });
    cleanups.add(() => client.close());

    const userId = `u-${randomUUID()}`;
    const accepted = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client.send({
          userId,
          channel: Channel.EMAIL,
          to: 'a@example.com',
          content: { subject: `s${i}`, body: 'b' },
        }),
      ),
    );
    child.proc.kill('SIGTERM');
    const exit = await child.exited;
    expect(exit, child.output()).toEqual({ code: 0, signal: null });

    // Whatever the stopped process did not deliver, a new one does: every id exactly once.
    const next = spawnHerald(['worker', '--channels', 'email'], { ...process.env, ...t.env });
    const scheduler = spawnHerald(['scheduler'], { ...process.env, ...t.env });
    await next.waitFor(/herald worker: running/);
    await scheduler.waitFor(/herald scheduler: running/);
    const ids = accepted.map((a) => a.id).sort();
    await expect
      .poll(() => [...new Set(t.deliveries())].filter((id) => ids.includes(id)).length, {
        timeout: 30_000,
        interval: 200,
      })
      .toBe(50);
    const counts = new Map<string, number>();
    for (const id of t.deliveries()) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([]);
    const { rows } = await t.db.pool.query<{ status: string; n: string }>(
      'select status, count(*) as n from notification where user_id = $1 group by status',
      [userId],
    );
    expect(rows).toEqual([{ status: 'DELIVERED', n: '50' }]);
    next.proc.kill('SIGTERM');
    scheduler.proc.kill('SIGTERM');
    expect(await next.exited).toEqual({ code: 0, signal: null });
    expect(await scheduler.exited).toEqual({ code: 0, signal: null });
  });

  it('releases a delivery still running at the deadline, uncharged, to the next process', async () => {
    const fake = await startHttpFake();
    cleanups.add(() => fake.close());
    fake.respond({ status: 200, delayMs: 60_000 }); // far past the shutdown deadline
    const t = await startTestHerald({
      roles: [],
      env: {
        HERALD_PROVIDERS: JSON.stringify({
          webhook: [{ type: 'webhook', url: `${fake.url}/hook`, secret: 'shutdown-secret-0123' }],
        }),
        HERALD_SHUTDOWN_TIMEOUT_MS: '2000',
      },
    });
    cleanups.add(() => t.stop());
    const { child, url } = await spawnHeraldAll(t.env);
    const client = createHeraldClient({ baseUrl: url });
    cleanups.add(() => client.close());

    const { id } = await client.send({
      userId: 'u-slow',
      channel: Channel.WEBHOOK,
      content: { body: 'slow' },
    });
    await fake.received(1);
    child.proc.kill('SIGTERM');
    expect(await child.exited, child.output()).toEqual({ code: 0, signal: null });
    const { rows } = await t.db.pool.query<{ status: string; attempt: number; floor: number }>(
      'select status, attempt, attempt_floor as floor from notification where id = $1',
      [id],
    );
    // Released, not failed: the interrupted attempt is not charged to the retry budget.
    expect(rows[0]).toEqual({ status: 'RETRYING', attempt: 1, floor: 1 });

    fake.respond({ status: 200 });
    const next = await spawnHeraldAll(t.env);
    const after = createHeraldClient({ baseUrl: next.url });
    cleanups.add(() => after.close());
    await expect
      .poll(async () => (await after.getNotification({ id })).notification?.status, {
        timeout: 30_000,
        interval: 100,
      })
      .toBe(NotificationStatus.DELIVERED);
    expect(fake.requests.filter((r) => r.headers['herald-webhook-id'] === id)).toHaveLength(2);
  });
});
