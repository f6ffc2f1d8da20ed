/**
 * PostgreSQL may close any connection at any time (restart, failover, idle timeouts, an operator's
 * pg_terminate_backend). Herald must keep running and serve the next request on a new connection.
 */
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { killAll, spawnHeraldAll } from '../support/processes.js';

const cleanups = createCleanups();

afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

describe('herald all when PostgreSQL terminates its connections', () => {
  it('keeps running and delivers the next notification', async () => {
    const t = await startTestHerald({ roles: [] });
    cleanups.add(() => t.stop());
    const { child, url } = await spawnHeraldAll(t.env);
    const client = createHeraldClient({ baseUrl: url });
    cleanups.add(() => client.close());
    const send = (subject: string) =>
      client.send({
        userId: 'u-pg',
        channel: Channel.EMAIL,
        to: 'a@example.com',
        content: { subject, body: 'b' },
      });
    const delivered = (id: string) =>
      expect
        .poll(async () => (await client.getNotification({ id })).notification?.status, {
          timeout: 20_000,
          interval: 100,
        })
        .toBe(NotificationStatus.DELIVERED);

    const first = await send('before');
    await delivered(first.id);

    // Every connection of the herald process is idle now; terminate them all.
    const { rows } = await t.db.pool.query<{ terminated: boolean }>(
      `select pg_terminate_backend(pid) as terminated from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()`,
    );
    expect(rows.filter((r) => r.terminated).length).toBeGreaterThan(0);
    // As long as the other waits here: on a busy machine the process may take more than the
    // poll's default second to read the termination from its sockets.
    await expect
      .poll(() => child.output(), { timeout: 20_000, interval: 100 })
      .toMatch(/idle PostgreSQL connection was closed/);

    const second = await send('after');
    await delivered(second.id);
    expect(child.proc.exitCode, child.output()).toBeNull();
    expect(child.proc.signalCode).toBeNull();
  });
});
