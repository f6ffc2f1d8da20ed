/**
 * The delivery engine against a fake webhook receiver (the provider is ours; only the receiver is
 * faked, at the wire): retries with backoff, the circuit breaker through an outage (R8), dead
 * letters for permanent failures and poison jobs (R10), heartbeats through a provider slower than
 * ack_wait (R9), and priority lanes.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  Channel,
  NotificationStatus,
  Priority,
  createHeraldClient,
  type HeraldClient,
} from '@herald/client';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { afterEach, describe, expect, it } from 'vitest';
import { jobSubject } from '../../src/infra/nats/layout.js';
import { createCleanups } from '../support/cleanups.js';
import { startHttpFake, type FakeAnswer, type HttpFake } from '../support/fakes/http-fake.js';
import { startFakeSmtpServer } from '../support/fakes/smtp.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { printLedger, reconcileLedger } from '../support/ledger.js';
import { NATS_URL } from '../support/nats.js';

const cleanups = createCleanups();
afterEach(() => cleanups.runAll());

const SECRET = 'delivery-engine-secret';

/** Herald (all roles) whose webhook channel posts to `fake`; fast retries unless `env` says otherwise. */
async function heraldFor(
  fake: HttpFake,
  env: Record<string, string> = {},
): Promise<{ t: TestHerald; client: HeraldClient }> {
  const t = await startTestHerald({
    env: {
      HERALD_PROVIDERS: JSON.stringify({
        webhook: [{ type: 'webhook', name: 'hook', url: `${fake.url}/hook`, secret: SECRET }],
      }),
      HERALD_RETRY_BASE_MS: '100',
      HERALD_RETRY_CAP_MS: '2000',
      HERALD_BREAKER_FAILURES: '1000',
      ...env,
    },
  });
  cleanups.add(() => t.stop());
  cleanups.add(() => fake.close());
  const client = createHeraldClient({ baseUrl: t.h2cUrl });
  cleanups.add(() => client.close());
  return { t, client };
}

async function startFake(): Promise<HttpFake> {
  const fake = await startHttpFake();
  cleanups.add(() => fake.close());
  return fake;
}

const hookId = (headers: Record<string, unknown>) => String(headers['herald-webhook-id']);

/** A responder that answers `answer()` and records the ids it answered 2xx for. */
function recordingResponder(answer: () => Exclude<FakeAnswer, 'hang'>) {
  const delivered: string[] = [];
  return {
    delivered,
    responder: (req: { headers: Record<string, unknown> }): FakeAnswer => {
      const a = answer();
      if (a.status >= 200 && a.status < 300) delivered.push(hookId(req.headers));
      return a;
    },
  };
}

function sendHook(client: HeraldClient, body: string, priority = Priority.NORMAL) {
  return client.send({ userId: 'u-engine', channel: Channel.WEBHOOK, priority, content: { body } });
}

async function statusCounts(t: TestHerald, ids: readonly string[]) {
  const { rows } = await t.db.pool.query<{ status: string; n: string }>(
    'select status, count(*) as n from notification where id = any($1::uuid[]) group by status',
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

describe('the delivery engine', () => {
  it('delivers on attempt 4 after 3 transient failures, showing each retry', async () => {
    const fake = await startFake();
    fake.enqueue(
      { status: 503 },
      { status: 500 },
      { status: 429, headers: { 'retry-after': '0' } },
    );
    fake.respond({ status: 200 });
    const { client } = await heraldFor(fake);

    const { id } = await sendHook(client, 'flaky');
    const retrying: { attempt: number; delayMs: number | null }[] = [];
    await expect
      .poll(
        async () => {
          const n = (await client.getNotification({ id })).notification;
          if (n?.status === NotificationStatus.RETRYING) {
            const due = n.nextAttemptAt && timestampDate(n.nextAttemptAt).getTime();
            const at = n.updatedAt && timestampDate(n.updatedAt).getTime();
            retrying.push({ attempt: n.attempt, delayMs: due && at ? due - at : null });
          }
          return n?.status;
        },
        { timeout: 30_000, interval: 20 },
      )
      .toBe(NotificationStatus.DELIVERED);

    const { notification, events } = await client.getNotification({ id });
    expect(notification?.attempt).toBe(4);
    expect(events.map((e) => NotificationStatus[e.status])).toEqual([
      'PENDING',
      ...Array.from({ length: 3 }, () => ['PROCESSING', 'RETRYING']).flat(),
      'PROCESSING',
      'DELIVERED',
    ]);
    expect(
      events.filter((e) => e.status === NotificationStatus.RETRYING).map((e) => e.error),
    ).toEqual(['hook: HTTP 503', 'hook: HTTP 500', 'hook: HTTP 429']);
    // Each retry was visible with its due time while it waited, no later than the configured
    // backoff allows: full jitter under 100 ms x 2^(attempt-1); the 429's Retry-After: 0 wins.
    expect(retrying.length).toBeGreaterThan(0);
    for (const r of retrying) {
      expect(r.delayMs).not.toBeNull();
      const ceiling = r.attempt === 3 ? 0 : 100 * 2 ** (r.attempt - 1);
      expect(r.delayMs).toBeLessThanOrEqual(ceiling);
    }
    expect(new Set(fake.requests.map((r) => hookId(r.headers)))).toEqual(new Set([id]));
    expect(fake.requests).toHaveLength(4);
  });

  it('holds messages while the provider is down (R8): all delivered after, none dead-lettered or duplicated', async () => {
    const fake = await startFake();
    let down = true;
    const receiver = recordingResponder(() => ({ status: down ? 503 : 200 }));
    fake.respond(receiver.responder);
    // At full speed three attempts take well under a second; the outage lasts seconds.
    const { t, client } = await heraldFor(fake, {
      HERALD_RETRY_BASE_MS: '50',
      HERALD_RETRY_MAX_ATTEMPTS: '3',
      HERALD_BREAKER_FAILURES: '2',
      HERALD_BREAKER_COOLDOWN_MS: '300',
    });

    const accepted = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sendHook(client, `outage ${i}`).then((r) => r.id)),
    );
    await fake.received(6);
    await new Promise((r) => setTimeout(r, 3_000));
    const duringOutage = fake.requests.length;
    down = false;

    await expect
      .poll(() => statusCounts(t, accepted), { timeout: 30_000, interval: 200 })
      .toEqual({ DELIVERED: 20 });
    const ledger = await reconcileLedger(t.db.pool, accepted, receiver.delivered);
    printLedger('R8 provider outage', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
    // Without the breaker the outage would have meant 3 requests per notification.
    expect(duringOutage).toBeLessThan(accepted.length * 3);
  });

  it('dead-letters permanent failures and poison jobs (R10) while healthy traffic flows', async () => {
    const fake = await startFake();
    const receiver = recordingResponder(() => ({ status: 200 }));
    let poisonFixed = false;
    fake.respond((req) =>
      req.body.includes('"body":"poison"') && !poisonFixed
        ? { status: 400 }
        : receiver.responder(req),
    );
    const { t, client } = await heraldFor(fake);
    const nc = await connect({ servers: NATS_URL });
    cleanups.add(() => nc.close());
    // A job no worker can read: terminated, never retried, nothing else disturbed.
    await jetstream(nc).publish(jobSubject(t.config.nats, 'webhook', 'normal'), '{not json');

    const poison = await sendHook(client, 'poison');
    const healthy = await Promise.all(
      Array.from({ length: 10 }, (_, i) => sendHook(client, `fine ${i}`).then((r) => r.id)),
    );
    await expect
      .poll(() => statusCounts(t, [poison.id, ...healthy]), { timeout: 30_000, interval: 100 })
      .toEqual({ DELIVERED: 10, FAILED: 1 });
    const { notification } = await client.getNotification({ id: poison.id });
    expect(notification).toMatchObject({ attempt: 1, lastError: 'hook: HTTP 400' });
    const { rows } = await t.db.pool.query<{ dead: boolean }>(
      'select dead_lettered_at is not null as dead from notification where id = $1',
      [poison.id],
    );
    expect(rows[0]?.dead).toBe(true);

    // The dead-letter stream holds its copy, with where it came from and why.
    const jsm = await jetstreamManager(nc);
    const copy = await jsm.streams.getMessage(`${t.config.nats.streamPrefix}_DLQ`, {
      last_by_subj: `${t.config.nats.subjectPrefix}.dlq.webhook.${poison.id}`,
    });
    expect(copy?.header.get('Herald-Last-Error')).toBe('hook: HTTP 400');
    expect(copy?.header.get('Herald-Attempts')).toBe('1');
    expect(copy?.header.get('Herald-Original-Subject')).toBe(
      jobSubject(t.config.nats, 'webhook', 'normal'),
    );
    // The receiver is fixed; replaying (twice, at once) delivers it once, on a new generation.
    poisonFixed = true;
    const replays = await Promise.all([
      client.deadLetters.replayDeadLetters({ ids: [poison.id] }),
      client.deadLetters.replayDeadLetters({ ids: [poison.id] }),
    ]);
    expect(replays.map((r) => r.replayedIds).flat()).toEqual([poison.id]);
    await expect
      .poll(async () => (await client.getNotification({ id: poison.id })).notification?.status, {
        timeout: 30_000,
        interval: 50,
      })
      .toBe(NotificationStatus.DELIVERED);
    expect((await client.deadLetters.replayDeadLetters({ ids: [poison.id] })).replayedIds).toEqual(
      [],
    );
    const after = await client.getNotification({ id: poison.id });
    expect(after.notification).toMatchObject({ attempt: 2, generation: 2n });
    const ledger = await reconcileLedger(t.db.pool, [...healthy, poison.id], receiver.delivered);
    printLedger('R10 poison, then replay', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
  });

  it('delivers once through a provider slower than ack_wait (R9)', async () => {
    const fake = await startFake();
    const receiver = recordingResponder(() => ({ status: 200, delayMs: 4_000 }));
    fake.respond(receiver.responder);
    const { t, client } = await heraldFor(fake, {
      HERALD_ACK_WAIT_MS: '1500',
      HERALD_PROVIDER_TIMEOUT_MS: '10000',
    });

    const accepted = await Promise.all(
      Array.from({ length: 3 }, (_, i) => sendHook(client, `slow ${i}`).then((r) => r.id)),
    );
    await expect
      .poll(() => statusCounts(t, accepted), { timeout: 30_000, interval: 200 })
      .toEqual({ DELIVERED: 3 });
    expect(fake.requests).toHaveLength(3);
    const ledger = await reconcileLedger(t.db.pool, accepted, receiver.delivered);
    printLedger('R9 slow provider', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
    const { rows } = await t.db.pool.query<{ attempt: number }>(
      'select attempt from notification where id = any($1::uuid[])',
      [accepted],
    );
    expect(rows.map((r) => r.attempt)).toEqual([1, 1, 1]);
  });

  it('delivers a critical notification ahead of a flood of low ones', async () => {
    const fake = await startFake();
    fake.respond({ status: 200, delayMs: 20 });
    const { client } = await heraldFor(fake, { HERALD_WORKER_CONCURRENCY: '2' });

    const flood = 300;
    for (let i = 0; i < flood; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => sendHook(client, `low ${i + j}`, Priority.LOW)),
      );
    }
    await fake.received(5);
    const critical = await sendHook(client, 'critical', Priority.CRITICAL);
    // Counted from the accepted Send: low jobs the slots took while the Send itself ran were
    // taken before the critical one existed.
    const before = fake.requests.length;
    await expect
      .poll(async () => (await client.getNotification({ id: critical.id })).notification?.status, {
        timeout: 30_000,
        interval: 20,
      })
      .toBe(NotificationStatus.DELIVERED);

    const position = fake.requests.findIndex((r) => hookId(r.headers) === critical.id);
    // Only the low jobs holding the two delivery slots when the Send returned (and one racing the
    // publish) may go first; the flood is still far from done.
    expect(position - before).toBeLessThanOrEqual(3);
    expect(position).toBeLessThan(flood / 2);
  });

  it('sends email over SMTP, failing over to the secondary relay while the primary refuses', async () => {
    const primary = await startFakeSmtpServer({ auth: { user: 'herald', pass: 'pw' } });
    const secondary = await startFakeSmtpServer();
    cleanups.add(() => primary.stop());
    cleanups.add(() => secondary.stop());
    primary.reply('rcpt', 421, 'try later');
    const relay = (name: string, port: number, auth: boolean) => ({
      type: 'smtp',
      name,
      host: '127.0.0.1',
      port,
      from: 'Herald <no-reply@example.com>',
      tlsRejectUnauthorized: false,
      ...(auth ? { user: 'herald', pass: '${TEST_SMTP_PASS}' } : {}),
    });
    const t = await startTestHerald({
      env: {
        TEST_SMTP_PASS: 'pw',
        HERALD_PROVIDERS: JSON.stringify({
          email: [relay('primary', primary.port, true), relay('secondary', secondary.port, false)],
        }),
      },
    });
    cleanups.add(() => t.stop());
    const client = createHeraldClient({ baseUrl: t.h2cUrl });
    cleanups.add(() => client.close());

    const send = (subject: string) =>
      client.send({
        userId: 'u-mail',
        channel: Channel.EMAIL,
        to: 'reader@example.com',
        content: { subject, body: 'text', html: '<p>html</p>' },
      });
    const delivered = async (id: string) => {
      await expect
        .poll(async () => (await client.getNotification({ id })).notification?.status, {
          timeout: 30_000,
          interval: 50,
        })
        .toBe(NotificationStatus.DELIVERED);
      return (await client.getNotification({ id })).notification;
    };

    const first = await send('via secondary');
    expect(await delivered(first.id)).toMatchObject({ provider: 'secondary', attempt: 1 });
    expect(secondary.messages.map((m) => [m.notificationId, m.subject, m.hasHtml])).toEqual([
      [first.id, 'via secondary', true],
    ]);

    primary.accept();
    const second = await send('via primary');
    expect(await delivered(second.id)).toMatchObject({ provider: 'primary', attempt: 1 });
    expect(primary.messages.map((m) => [m.notificationId, m.user])).toEqual([
      [second.id, 'herald'],
    ]);
  });

  it('publishes again a job the queue gave up on (max deliveries) while its retry budget lasts', async () => {
    const fake = await startFake();
    let down = true;
    const receiver = recordingResponder(() => ({ status: down ? 503 : 200 }));
    fake.respond(receiver.responder);
    // Two deliveries per job: the breaker's waiting naks use them up long before the attempts.
    const { t, client } = await heraldFor(fake, {
      HERALD_MAX_DELIVER: '2',
      HERALD_BREAKER_FAILURES: '1',
      HERALD_BREAKER_COOLDOWN_MS: '1000',
      HERALD_RETRY_MAX_ATTEMPTS: '5',
    });
    const accepted = await Promise.all(
      Array.from({ length: 5 }, (_, i) => sendHook(client, `advisory ${i}`).then((r) => r.id)),
    );
    // Until the advisories have made the scheduler publish some of them again.
    await expect
      .poll(
        async () => {
          const { rows } = await t.db.pool.query<{ n: string }>(
            'select count(*) as n from notification where id = any($1::uuid[]) and generation > 1',
            [accepted],
          );
          return Number(rows[0]?.n);
        },
        { timeout: 30_000, interval: 200 },
      )
      .toBeGreaterThan(0);
    down = false;

    await expect
      .poll(() => statusCounts(t, accepted), { timeout: 30_000, interval: 200 })
      .toEqual({ DELIVERED: 5 });
    const ledger = await reconcileLedger(t.db.pool, accepted, receiver.delivered);
    printLedger('max deliveries', ledger);
    expect(ledger).toMatchObject({ lost: [], duplicated: [], phantom: [] });
  });
});
