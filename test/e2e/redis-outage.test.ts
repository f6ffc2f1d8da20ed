/**
 * RELIABILITY R6: Redis (the rate limits' only store) is killed and comes back under steady load.
 * Rate-limit windows may start afresh (documented); idempotency, kept in PostgreSQL, is not
 * affected; and the errors, if any, last no longer than the outage. Redis is shared by the whole
 * suite, so the outage is a TCP proxy between Herald and it (test/support/tcp-proxy.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Code } from '@connectrpc/connect';
import { createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import {
  expectAllDelivered,
  failureCodes,
  keyedEmailSend,
  retryFailed,
  sentWithin,
  startSteadyLoad,
} from '../support/steady-load.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

const OUTAGE_MS = 5_000;
const DELIVERY_TIMEOUT_MS = 30_000;

const cleanups = createCleanups();
afterEach(() => cleanups.runAll());

describe('Herald with Redis down for 5 s (R6)', () => {
  it.each([
    { mode: 'open', during: 'accepts every Send (limited in process)' },
    { mode: 'closed', during: 'refuses new Sends with UNAVAILABLE but answers replays' },
  ] as const)(
    'HERALD_RATE_LIMIT_ON_REDIS_ERROR=$mode: $during, loses nothing, and recovers at once',
    async ({ mode }) => {
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
      cleanups.add(() => proxy.close());
      const t = await startTestHerald({
        env: {
          HERALD_REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
          HERALD_RATE_LIMIT_ON_REDIS_ERROR: mode,
        },
      });
      cleanups.add(() => t.stop());
      const client = createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc', timeoutMs: 10_000 });
      cleanups.add(() => client.close());
      const send = keyedEmailSend(client, 'u-r6');

      // Steady load throughout: one Send every 50 ms.
      const load = startSteadyLoad(send, 'r6-load', 50);
      await sleep(2_000);
      const before = load.attempts.find((a) => a.id !== null);
      expect(before).toBeDefined();

      await proxy.down();
      const downAt = Date.now();
      await sleep(1_000);
      // A replay is answered from PostgreSQL, before the rate limit: Redis is not needed.
      const replayed = await send(before?.key ?? '');
      expect(replayed.id).toBe(before?.id);
      await sleep(OUTAGE_MS - 1_000);
      const upAt = Date.now();
      await proxy.up();
      await sleep(4_000);
      const attempts = await load.stop();

      const during = sentWithin(attempts, downAt, upAt);
      expect(during.length).toBeGreaterThan(50);
      if (mode === 'open') {
        expect(attempts.filter((a) => a.id === null)).toEqual([]);
      } else {
        expect(during.filter((a) => a.id !== null)).toEqual([]);
        expect(failureCodes(attempts)).toEqual(new Set([Code.Unavailable]));
      }
      // Errors stop with the outage: once a Send started after Redis came back has succeeded,
      // every Send started after that one succeeds too.
      const after = attempts.filter((a) => a.started >= upAt).sort((a, b) => a.started - b.started);
      const firstOk = after.findIndex((a) => a.id !== null);
      expect(firstOk).toBeGreaterThanOrEqual(0);
      expect(after.slice(firstOk).filter((a) => a.id === null)).toEqual([]);

      // The client retries what failed, with the same keys: one notification per key.
      const accepted = await retryFailed(attempts, send);
      const ids = [...accepted.values()];
      await expectAllDelivered(t.db.pool, ids, DELIVERY_TIMEOUT_MS);
      const ledger = await reconcileLedger(t.db.pool, ids, t.deliveries());
      printLedger(`R6 Redis down 5 s (${mode})`, ledger);
      expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
      const { rows } = await t.db.pool.query<{ n: string }>(
        "select count(*) as n from notification where idempotency_key like 'r6-%'",
      );
      expect(rows[0]?.n).toBe(String(accepted.size));
    },
  );
});
