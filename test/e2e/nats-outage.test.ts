/**
 * RELIABILITY R5: nats-server goes away (SIGTERM or SIGKILL) while Herald runs. The api keeps
 * accepting, and what it accepted during the outage is delivered once NATS is back, without any
 * new request.
 */
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import type { HeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import type { TestHerald } from '../support/herald.js';
import { startNatsServer } from '../support/nats-server.js';
import type { TestNatsServer } from '../support/nats-server.js';

/** Generous: after a restart the client reconnects (1 s apart) and the outbox sweep republishes. */
const DELIVERY_TIMEOUT_MS = 30_000;

const cleanups = createCleanups();

afterEach(() => cleanups.runAll());

/** A nats-server whose running state the test tracks, so cleanup can bring it back up. */
interface OwnedServer {
  server: TestNatsServer;
  running: boolean;
}

async function setUp(): Promise<{ owned: OwnedServer; t: TestHerald; client: HeraldClient }> {
  const owned: OwnedServer = { server: await startNatsServer({ jetstream: true }), running: true };
  cleanups.add(() => owned.server.close());
  const t = await startTestHerald({ natsUrl: owned.server.url });
  cleanups.add(async () => {
    // Herald's shutdown drains its NATS connection, and removing the test's streams needs NATS.
    if (!owned.running) await owned.server.start();
    await t.stop();
  });
  const client = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc', timeoutMs: 10_000 });
  cleanups.add(() => client.close());
  return { owned, t, client };
}

function sendEmail(client: HeraldClient, body: string) {
  return client.send({
    userId: 'u1',
    channel: Channel.EMAIL,
    to: 'a@example.com',
    content: { subject: 'Outage test', body },
  });
}

async function statusOf(client: HeraldClient, id: string): Promise<NotificationStatus | undefined> {
  return (await client.getNotification({ id })).notification?.status;
}

describe('Herald with NATS down', () => {
  it.each([
    { how: 'stopped (SIGTERM)', down: (s: TestNatsServer) => s.stop() },
    { how: 'killed (SIGKILL)', down: (s: TestNatsServer) => s.kill() },
  ])(
    'accepts and later delivers exactly once when nats-server is $how and started again',
    async ({ down }) => {
      const { owned, t, client } = await setUp();

      const before = await sendEmail(client, 'before the outage');
      await expect
        .poll(() => statusOf(client, before.id), { timeout: DELIVERY_TIMEOUT_MS, interval: 100 })
        .toBe(NotificationStatus.DELIVERED);

      await down(owned.server);
      owned.running = false;
      const during = await sendEmail(client, 'during the outage');
      expect(during.status).toBe(NotificationStatus.PENDING);
      const got = await client.getNotification({ id: during.id });
      expect(got.notification?.status).toBe(NotificationStatus.PENDING);
      expect(got.events.map((e) => e.status)).toEqual([NotificationStatus.PENDING]);

      await owned.server.start();
      owned.running = true;
      await expect
        .poll(() => statusOf(client, during.id), { timeout: DELIVERY_TIMEOUT_MS, interval: 100 })
        .toBe(NotificationStatus.DELIVERED);

      const deliveries = t.deliveries();
      const ledger = await reconcileLedger(t.db.pool, [before.id, during.id], deliveries);
      printLedger('R5 nats-server down', ledger);
      expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
      expect(deliveries.filter((id) => id === during.id)).toHaveLength(1);
      expect(deliveries.filter((id) => id === before.id)).toHaveLength(1);
      const history = (await client.getNotification({ id: during.id })).events.map((e) => e.status);
      expect(history.filter((s) => s === NotificationStatus.DELIVERED)).toHaveLength(1);
      expect(history.at(-1)).toBe(NotificationStatus.DELIVERED);
    },
  );
});
