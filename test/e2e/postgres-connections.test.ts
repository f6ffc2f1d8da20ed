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
const APP = 'herald-pg-termination-test';

afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

describe('herald all when PostgreSQL terminates its connections', () => {
  it('keeps running and delivers the next notification', async () => {
    const t = await startTestHerald({ roles: [] });
    cleanups.add(() => t.stop());
    // Named (node-postgres reads PGAPPNAME), so the test terminates this process's connections
    // and no others.
    const { child, url } = await spawnHeraldAll({ ...t.env, PGAPPNAME: APP });
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

    // Terminate the process's idle connections. A sweep may hold its one connection at that
    // moment (then only the sweep fails): try again until an idle one was caught.
    await expect
      .poll(
        async () => {
          const { rows } = await t.db.pool.query<{ n: string }>(
            `select count(*) filter (where pg_terminate_backend(pid)) as n from pg_stat_activity
              where application_name = $1 and state = 'idle'`,
            [APP],
          );
          return Number(rows[0]?.n);
        },
        { timeout: 20_000, interval: 50 },
      )
      .toBeGreaterThan(0);
    await expect
      .poll(() => child.output(), { timeout: 20_000, interval: 100 })
      .toMatch(/idle PostgreSQL connection was closed/);

    const second = await send('after');
    await delivered(second.id);
    expect(child.proc.exitCode, child.output()).toBeNull();
    expect(child.proc.signalCode).toBeNull();
  });
});
