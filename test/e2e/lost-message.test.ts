/**
 * RELIABILITY: JetStream can lose an acked message; PostgreSQL is the source of truth, so a lost
 * job must turn into a delay, never a loss. Here the job is purged from its stream after the api
 * published it; the scheduler notices nobody picked the notification up and publishes it again.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { streamName } from '../../src/infra/nats/layout.js';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { NATS_URL } from '../support/nats.js';
import { killAll, spawnHerald } from '../support/processes.js';

const cleanups = createCleanups();

afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

describe('a job lost by JetStream', () => {
  it('is published again and delivered once when no worker picked it up in time', async () => {
    const t = await startTestHerald({
      roles: ['api', 'scheduler'],
      env: { HERALD_STALE_AFTER_MS: '1500' },
    });
    cleanups.add(() => t.stop());
    const client = createHeraldClient({ baseUrl: t.h2cUrl });
    cleanups.add(() => client.close());
    const nc = await connect({ servers: NATS_URL });
    cleanups.add(() => nc.close());

    const { id } = await client.send({
      userId: 'u-lost',
      channel: Channel.EMAIL,
      to: 'a@example.com',
      content: { subject: 'lost', body: 'b' },
    });
    // With no worker to claim it, the api stamps published_at a moment (stampDelayMs) after the
    // publish.
    await expect
      .poll(
        async () => {
          const { rows } = await t.db.pool.query<{ published: boolean }>(
            'select published_at is not null as published from notification where id = $1',
            [id],
          );
          return rows[0]?.published;
        },
        { timeout: 10_000 },
      )
      .toBe(true);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(streamName(t.config.nats, 'email'));

    spawnHerald(['worker', '--channels', 'email'], { ...process.env, ...t.env });

    await expect
      .poll(async () => (await client.getNotification({ id })).notification?.status, {
        timeout: 30_000,
        interval: 200,
      })
      .toBe(NotificationStatus.DELIVERED);
    expect(t.deliveries().filter((d) => d === id)).toHaveLength(1);
    const { notification } = await client.getNotification({ id });
    expect(notification?.attempt).toBe(1);
  });
});
