/**
 * RELIABILITY R7: PostgreSQL goes away for 15 s under steady load. The api answers UNAVAILABLE
 * (never a success without a commit), the workers back off without using up max_deliver, and once
 * it is back every notification is delivered exactly once; a client that retries its failed Sends
 * with their idempotency keys ends with one notification per key.
 *
 * PostgreSQL itself is shared by the whole suite, so the outage is a TCP proxy between Herald and
 * it (test/support/tcp-proxy.ts): Herald's connections are cut and new ones refused, as when the
 * server stops, while other tests go on using it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createHeraldClient } from '@herald/client';
import { Code } from '@connectrpc/connect';
import { afterEach, describe, expect, it } from 'vitest';
import { consumerName, streamName } from '../../src/infra/nats/layout.js';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import { killAll, spawnHerald } from '../support/processes.js';
import {
  expectAllDelivered,
  failureCodes,
  keyedEmailSend,
  retryFailed,
  sentWithin,
  startSteadyLoad,
} from '../support/steady-load.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

const OUTAGE_MS = 15_000;
/**
 * Low enough that a worker retrying a claim that cannot run at a fixed pace through the outage
 * would reach it, high enough for the doubling back-off to ride the outage out.
 */
const MAX_DELIVER = 8;
/** After the outage: the back-off's next try, then the delivery. */
const DELIVERY_TIMEOUT_MS = 60_000;

const cleanups = createCleanups();

afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

describe('Herald with PostgreSQL down for 15 s (R7)', () => {
  it('answers UNAVAILABLE, loses nothing, and its workers do not use up max_deliver', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
    cleanups.add(() => proxy.close());
    const t = await startTestHerald({
      roles: ['api', 'scheduler'],
      databaseUrl: (url) => {
        const u = new URL(url);
        u.port = String(proxy.port);
        return u.toString();
      },
      env: { HERALD_MAX_DELIVER: String(MAX_DELIVER) },
    });
    cleanups.add(async () => {
      await proxy.up();
      await t.stop();
    });
    const client = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc', timeoutMs: 10_000 });
    cleanups.add(() => client.close());
    const nc = await connect({ servers: t.config.nats.url });
    cleanups.add(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const worker = spawnHerald(['worker', '--channels', 'email'], { ...process.env, ...t.env });
    const send = keyedEmailSend(client, 'u-r7');
    const statusOf = async (id: string) =>
      (
        await t.db.pool.query<{ status: string }>('select status from notification where id = $1', [
          id,
        ])
      ).rows[0]?.status;

    const warmUp = await send('r7-warm-up');
    await expect
      .poll(() => statusOf(warmUp.id), { timeout: DELIVERY_TIMEOUT_MS, interval: 100 })
      .toBe('DELIVERED');

    // Jobs waiting in the queue when PostgreSQL goes: the worker is paused while they are
    // accepted, so it meets them only once the database is gone.
    worker.proc.kill('SIGSTOP');
    const queued = [];
    for (let i = 0; i < 10; i++) queued.push(await send(`r7-queued-${i}`));

    // Steady load throughout: one Send every 100 ms.
    const load = startSteadyLoad(send, 'r7-load', 100);
    await sleep(2_000);

    await proxy.down();
    const downAt = Date.now();
    worker.proc.kill('SIGCONT');
    await sleep(OUTAGE_MS);
    const upAt = Date.now();
    await proxy.up();
    await sleep(3_000);
    const attempts = await load.stop();

    // During the outage: no success, and every failure is UNAVAILABLE.
    const during = sentWithin(attempts, downAt, upAt);
    expect(during.length).toBeGreaterThan(50);
    expect(during.filter((a) => a.id !== null)).toEqual([]);
    expect(failureCodes(attempts)).toEqual(new Set([Code.Unavailable]));

    // The client retries what failed, with the same keys.
    const accepted = await retryFailed(attempts, send);
    const ids = [warmUp.id, ...queued.map((n) => n.id), ...accepted.values()];
    await expectAllDelivered(t.db.pool, ids, DELIVERY_TIMEOUT_MS);

    const ledger = await reconcileLedger(t.db.pool, ids, t.deliveries());
    printLedger('R7 PostgreSQL down 15 s', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
    expect(ledger.statuses).toEqual({ DELIVERED: ids.length });
    // One notification per key, whether its first Send failed or not.
    const { rows } = await t.db.pool.query<{ key: string; n: string }>(
      "select idempotency_key as key, count(*) as n from notification where idempotency_key like 'r7-%' group by 1 having count(*) > 1",
    );
    expect(rows).toEqual([]);
    // The worker met the queued jobs while the database was gone, and put them back.
    const consumer = await jsm.consumers.info(
      streamName(t.config.nats, 'email'),
      consumerName('email', 'normal'),
    );
    expect(consumer.delivered.consumer_seq - consumer.delivered.stream_seq).toBeGreaterThanOrEqual(
      queued.length,
    );
    // Yet the outage cost no delivery attempt (each was delivered at its first), and the queue
    // never gave up on a job (max_deliver reached: it would have been published again, under a
    // new generation).
    const made = await t.db.pool.query<{ attempt: number; generation: number; n: string }>(
      'select attempt, generation, count(*) as n from notification where id = any($1::uuid[]) group by 1, 2',
      [ids],
    );
    expect(made.rows).toEqual([{ attempt: 1, generation: 1, n: String(ids.length) }]);
    // And said so without a flood: the failed claims are a warning every 5 s, not one each.
    const claimWarnings = worker.output().match(/claim failed; will retry/g) ?? [];
    expect(claimWarnings.length).toBeGreaterThan(0);
    expect(claimWarnings.length).toBeLessThanOrEqual(OUTAGE_MS / 5_000 + 1);
    expect(worker.proc.exitCode).toBeNull();
  });
});
