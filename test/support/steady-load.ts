/**
 * Steady load for the fault tests (RELIABILITY.md): one Send at a fixed interval, each with its
 * own idempotency key, every outcome recorded with when it started and ended, so a test can say
 * what was answered while a dependency was down and retry what failed with the same keys.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectError, type Code } from '@connectrpc/connect';
import { Channel, type HeraldClient } from '@herald/client';
import type pg from 'pg';
import { expect } from 'vitest';

export interface Attempt {
  key: string;
  /** When the Send started and ended (ms since the epoch). */
  started: number;
  ended: number;
  /** The notification's id when the Send succeeded, else null. */
  id: string | null;
  /** The error's code when it failed, else null. */
  code: Code | null;
}

export interface SteadyLoad {
  /** Every Send settled so far. */
  attempts: Attempt[];
  /** Stops sending and waits for the Sends in flight to settle. */
  stop(): Promise<Attempt[]>;
}

/** A Send of one email to `userId` under the idempotency key it is given (the key is its body). */
export function keyedEmailSend(client: HeraldClient, userId: string) {
  return (key: string) =>
    client.send({
      userId,
      channel: Channel.EMAIL,
      to: 'a@example.com',
      content: { subject: userId, body: key },
      idempotencyKey: key,
    });
}

/** Sends `send(<prefix>-<n>)` every `intervalMs` until stopped. */
export function startSteadyLoad(
  send: (key: string) => Promise<{ id: string }>,
  prefix: string,
  intervalMs: number,
): SteadyLoad {
  const attempts: Attempt[] = [];
  const settling: Promise<void>[] = [];
  let sending = true;
  const loop = (async () => {
    for (let i = 0; sending; i++) {
      const key = `${prefix}-${i}`;
      const started = Date.now();
      const done = (id: string | null, code: Code | null) =>
        void attempts.push({ key, started, ended: Date.now(), id, code });
      settling.push(
        send(key).then(
          (n) => done(n.id, null),
          (err: unknown) => done(null, ConnectError.from(err).code),
        ),
      );
      await sleep(intervalMs);
    }
  })();
  return {
    attempts,
    async stop() {
      sending = false;
      await loop;
      await Promise.all(settling);
      return attempts;
    },
  };
}

/** The Sends that started and ended between `from` and `to` (ms since the epoch). */
export function sentWithin(attempts: readonly Attempt[], from: number, to: number): Attempt[] {
  return attempts.filter((a) => a.started >= from && a.ended <= to);
}

/** The codes the failed Sends got. */
export function failureCodes(attempts: readonly Attempt[]): Set<Code> {
  return new Set(attempts.flatMap((a) => (a.code === null ? [] : [a.code])));
}

/**
 * What a client would end with: the id of every key, the failed ones sent again (once each,
 * with the same key). Keys map to ids.
 */
export async function retryFailed(
  attempts: readonly Attempt[],
  send: (key: string) => Promise<{ id: string }>,
): Promise<Map<string, string>> {
  const accepted = new Map<string, string>();
  for (const a of attempts) if (a.id !== null) accepted.set(a.key, a.id);
  for (const a of attempts) if (a.id === null) accepted.set(a.key, (await send(a.key)).id);
  return accepted;
}

/** Waits until every one of `ids` is DELIVERED in the database. */
export async function expectAllDelivered(
  pool: pg.Pool,
  ids: readonly string[],
  timeoutMs: number,
): Promise<void> {
  await expect
    .poll(
      async () =>
        (
          await pool.query<{ n: string }>(
            "select count(*) as n from notification where id = any($1::uuid[]) and status <> 'DELIVERED'",
            [ids],
          )
        ).rows[0]?.n,
      { timeout: timeoutMs, interval: 250 },
    )
    .toBe('0');
}
