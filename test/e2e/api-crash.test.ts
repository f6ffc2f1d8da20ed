/**
 * RELIABILITY R2: the api process is killed with SIGKILL again and again while clients keep
 * sending, each retrying its request with the same idempotency key until it gets an answer. Every
 * key ends up as exactly one notification, and every success the clients saw names a committed
 * row.
 */
import { Channel, createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { freePort } from '../support/ports.js';
import { killAll, spawnHerald, type HeraldProcess } from '../support/processes.js';

const cleanups = createCleanups();
afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

describe('herald api killed while clients retry', () => {
  it('makes one notification per idempotency key, and every answer is committed (R2)', async () => {
    const t = await startTestHerald({ roles: [] });
    cleanups.add(() => t.stop());
    const port = await freePort();
    const env = {
      ...process.env,
      ...t.env,
      HERALD_API_H2C_PORT: String(port),
      HERALD_API_HTTP_PORT: '0',
      HERALD_MIGRATE_ON_START: 'false',
    };
    const startApi = async (): Promise<HeraldProcess> => {
      const api = spawnHerald(['api'], env);
      await api.waitFor(/herald api: gRPC\/Connect \(h2c\)/);
      return api;
    };

    let api = await startApi();
    let sendingDone = false;
    let kills = 0;
    // Kill -9 and restart the api, over and over, while the clients work — up to MAX_KILLS times,
    // then the clients finish against the last one: on a slow, loaded machine a restart takes
    // seconds, and kills without end would leave the api up too little of the time to finish.
    const MAX_KILLS = 8;
    const killer = (async () => {
      while (!sendingDone && kills < MAX_KILLS) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 250));
        api.proc.kill('SIGKILL');
        await api.exited;
        kills += 1;
        api = await startApi();
      }
    })();

    const client = createHeraldClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 3_000 });
    cleanups.add(() => client.close());
    const keys = Array.from({ length: 300 }, (_, i) => `r2-${i}`);
    const answered = new Map<string, string>();
    let failures = 0;
    const sendUntilAnswered = async (key: string) => {
      for (;;) {
        try {
          const res = await client.send({
            userId: `u-${key}`,
            channel: Channel.EMAIL,
            to: 'a@example.com',
            content: { subject: 'r2', body: key },
            idempotencyKey: key,
          });
          answered.set(key, res.id);
          return;
        } catch {
          failures += 1;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    // Ten clients' worth of concurrent work, each working through its share of the keys.
    await Promise.all(
      Array.from({ length: 10 }, async (_, lane) => {
        for (let i = lane; i < keys.length; i += 10) await sendUntilAnswered(keys[i] as string);
      }),
    );
    sendingDone = true;
    await killer;

    const { rows } = await t.db.pool.query<{ key: string; id: string; n: string }>(
      `select idempotency_key as key, min(id::text) as id, count(*) as n from notification
       group by idempotency_key`,
    );
    console.log(
      `R2: ${kills} kills, ${failures} failed attempts retried, ${rows.length} keys stored`,
    );
    expect(kills).toBeGreaterThan(0);
    expect(failures).toBeGreaterThan(0);
    expect(rows).toHaveLength(keys.length);
    for (const r of rows) {
      expect(r.n, r.key).toBe('1');
      expect(answered.get(r.key), r.key).toBe(r.id);
    }
  }, 120_000); // a guard against a hang: up to eight restarts of a process on a loaded machine
});
