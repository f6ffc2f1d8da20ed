/**
 * RELIABILITY R3 (a)-(d): a `herald worker` process is killed with SIGKILL at a step of its first
 * delivery; a second worker must finish the job. Exactly one delivery, except (c) — killed after
 * the provider accepted, before the commit — where the log provider (like SMTP) has no
 * idempotency key: that window's duplicate is counted and printed, not hidden.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import type { HeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { consumerName, streamName } from '../../src/infra/nats/layout.js';
import type { CrashPoint } from '../../src/workers/channel-worker.js';
import { createCleanups } from '../support/cleanups.js';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import { startTestHerald } from '../support/herald.js';
import type { TestHerald } from '../support/herald.js';
import { killAll, spawnHerald, type HeraldProcess } from '../support/processes.js';

/** Generous: redelivery waits for the 3 s ack_wait, and a child process has to start. */
const DELIVERY_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 20_000;

const cleanups = createCleanups();

afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

function spawnWorker(env: Record<string, string | undefined>): HeraldProcess {
  return spawnHerald(['worker', '--channels', 'email'], env);
}

/** Rejects with `what` when `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function statusOf(client: HeraldClient, id: string): Promise<NotificationStatus | undefined> {
  return (await client.getNotification({ id })).notification?.status;
}

describe('herald worker killed mid-delivery', () => {
  let t: TestHerald;
  let client: HeraldClient;
  let nc: NatsConnection;

  async function setUp(): Promise<void> {
    t = await startTestHerald({ roles: ['api', 'scheduler'] });
    cleanups.add(() => t.stop());
    client = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc', timeoutMs: 10_000 });
    cleanups.add(() => client.close());
    nc = await connect({ servers: t.config.nats.url });
    cleanups.add(() => nc.close());
  }

  /** The email stream's consumer of the lane a default-priority notification goes to. */
  async function emailConsumer(): Promise<ConsumerInfo> {
    const jsm = await jetstreamManager(nc);
    return jsm.consumers.info(streamName(t.config.nats, 'email'), consumerName('email', 'normal'));
  }

  async function crashThenRecover(point: CrashPoint) {
    await setUp();
    const crashing = spawnWorker({ ...process.env, ...t.env, HERALD_TEST_CRASH_AT: point });
    const sent = await client.send({
      userId: 'u1',
      channel: Channel.EMAIL,
      to: 'a@example.com',
      content: { subject: 'Crash test', body: `killed ${point}` },
    });
    expect(sent.status).toBe(NotificationStatus.PENDING);

    const exit = await within(crashing.exited, EXIT_TIMEOUT_MS, 'the crashing worker to exit');
    expect(exit, crashing.output()).toEqual({ code: null, signal: 'SIGKILL' });

    const recovering = spawnWorker({ ...process.env, ...t.env });
    await expect
      .poll(() => statusOf(client, sent.id), { timeout: DELIVERY_TIMEOUT_MS, interval: 100 })
      .toBe(NotificationStatus.DELIVERED);
    // Every job message, including the crashed worker's redelivered one, has been settled: the
    // second worker has seen and acked everything it will ever see for this notification.
    await expect
      .poll(
        async () => {
          const info = await emailConsumer();
          return { pending: info.num_pending, ackPending: info.num_ack_pending };
        },
        { timeout: DELIVERY_TIMEOUT_MS, interval: 100 },
      )
      .toEqual({ pending: 0, ackPending: 0 });
    // The consumer handed out a job again after the crash (to the second worker).
    expect((await emailConsumer()).delivered.consumer_seq).toBeGreaterThanOrEqual(2);
    expect(recovering.proc.exitCode, recovering.output()).toBeNull();

    const got = await client.getNotification({ id: sent.id });
    const deliveries = t.deliveries().filter((d) => d === sent.id);
    const ledger = await reconcileLedger(t.db.pool, [sent.id], deliveries);
    printLedger(`R3 worker killed ${point}`, ledger);
    expect(ledger.lost).toEqual([]);
    return {
      id: sent.id,
      notification: got.notification,
      statuses: got.events.map((e) => e.status),
      deliveries,
      ledger,
    };
  }

  it.each(['after-claim', 'during-provider'] as const)(
    'delivers exactly once on a later attempt when the worker is killed %s',
    async (point) => {
      const r = await crashThenRecover(point);

      expect(r.deliveries).toHaveLength(1);
      expect(r.notification?.status).toBe(NotificationStatus.DELIVERED);
      expect(r.notification?.attempt).toBeGreaterThanOrEqual(2);
      expect(r.statuses[0]).toBe(NotificationStatus.PENDING);
      expect(r.statuses.at(-1)).toBe(NotificationStatus.DELIVERED);
      expect(r.statuses.filter((s) => s === NotificationStatus.DELIVERED)).toHaveLength(1);
      // The crashed attempt's claim and the successful one's.
      expect(
        r.statuses.filter((s) => s === NotificationStatus.PROCESSING).length,
      ).toBeGreaterThanOrEqual(2);
      expect(
        r.statuses.every((s) =>
          [
            NotificationStatus.PENDING,
            NotificationStatus.PROCESSING,
            NotificationStatus.RETRYING,
            NotificationStatus.DELIVERED,
          ].includes(s),
        ),
      ).toBe(true);
    },
  );

  it('delivers again, counted, when the worker is killed after the provider accepted (R3 c)', async () => {
    const r = await crashThenRecover('after-provider');

    expect(r.notification?.status).toBe(NotificationStatus.DELIVERED);
    expect(r.notification?.attempt).toBe(2);
    // The provider call of the killed attempt went through; nothing recorded it, so it is sent
    // again: the known duplicate window of a provider without idempotency keys.
    expect(r.deliveries).toHaveLength(2);
    expect(r.ledger.duplicated).toEqual([r.id]);
  });

  it('acks the redelivered job without delivering again when the worker is killed after commit', async () => {
    const r = await crashThenRecover('after-commit');

    expect(r.deliveries).toHaveLength(1);
    expect(r.notification?.status).toBe(NotificationStatus.DELIVERED);
    expect(r.notification?.attempt).toBe(1);
    expect(r.statuses).toEqual([
      NotificationStatus.PENDING,
      NotificationStatus.PROCESSING,
      NotificationStatus.DELIVERED,
    ]);
  });
});
