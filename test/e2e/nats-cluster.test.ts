/**
 * RELIABILITY R18: Herald on a three-node NATS cluster (three nats-server processes on loopback)
 * with its streams replicated three times; the node leading the email stream is killed with
 * SIGKILL under steady load. The api keeps accepting, and every accepted notification is
 * delivered exactly once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { streamName } from '../../src/infra/nats/layout.js';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import { startNatsCluster } from '../support/nats-server.js';
import { expectAllDelivered, keyedEmailSend, startSteadyLoad } from '../support/steady-load.js';

/**
 * Leader elections, the outbox sweep for what could not be published meanwhile, and the workers'
 * pull requests to the lost leader expiring (30 s) before they pull from the new one.
 */
const DELIVERY_TIMEOUT_MS = 60_000;
/** Creating the replicated streams takes a while on nats-server 2.9, and so does the above. */
const TEST_TIMEOUT_MS = 150_000;

const cleanups = createCleanups();
afterEach(() => cleanups.runAll());

describe('Herald on a three-node NATS cluster (R18)', () => {
  it(
    'loses and duplicates nothing when the email stream’s leader is killed under load',
    async () => {
      const cluster = await startNatsCluster(3);
      cleanups.add(() => cluster.close());
      const nc = await connect({ servers: cluster.url.split(',') });
      cleanups.add(() => nc.close());
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      // JetStream answers once the cluster has elected its meta leader.
      await expect
        .poll(
          () =>
            jsm.getAccountInfo().then(
              () => true,
              () => false,
            ),
          { timeout: 30_000, interval: 250 },
        )
        .toBe(true);
      const t = await startTestHerald({ natsUrl: cluster.url, env: { HERALD_NATS_REPLICAS: '3' } });
      cleanups.add(() => t.stop());
      const client = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc', timeoutMs: 10_000 });
      cleanups.add(() => client.close());
      const send = keyedEmailSend(client, 'u-r18');

      const info = await jsm.streams.info(streamName(t.config.nats, 'email'));
      expect(info.config.num_replicas).toBe(3);
      const leaderName = info.cluster?.leader ?? '';
      const leader = cluster.nodes.find((_, i) => `n${i}` === leaderName);
      expect(leader).toBeDefined();

      const load = startSteadyLoad(send, 'r18-load', 50);
      await sleep(2_000);
      await leader?.kill();
      await sleep(8_000);
      const attempts = await load.stop();

      // The api never needed NATS to accept.
      expect(attempts.length).toBeGreaterThan(100);
      expect(attempts.filter((a) => a.id === null)).toEqual([]);
      const ids = attempts.map((a) => a.id ?? '');
      await expectAllDelivered(t.db.pool, ids, DELIVERY_TIMEOUT_MS);
      const ledger = await reconcileLedger(t.db.pool, ids, t.deliveries());
      printLedger('R18 NATS cluster, stream leader killed', ledger);
      expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
      // The stream carried on under a leader among the survivors.
      const after = await jsm.streams.info(streamName(t.config.nats, 'email'));
      expect([leaderName, undefined]).not.toContain(after.cluster?.leader);
    },
    TEST_TIMEOUT_MS,
  );
});
