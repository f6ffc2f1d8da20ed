/**
 * HERALD_WEBHOOK_PRIVATE_ADDRESSES against a real api and worker, with a local webhook receiver:
 * with `deny`, a Send whose `to` shows a private host is INVALID_ARGUMENT and stores nothing, and
 * one whose host name resolves to a private address is accepted and then FAILED when delivering,
 * without the receiver hearing of it; with `allow`, private `to` URLs reach the receiver. Under
 * `deny`, host names resolve through a fixed table (`receiver.herald.test` is loopback).
 */
import { Code } from '@connectrpc/connect';
import { Channel, NotificationStatus, createHeraldClient, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFUSED_AT_DELIVERY, type ResolveHost } from '../../src/providers/private-addresses.js';
import { rejection, violatedFields } from '../support/connect.js';
import { startHttpFake, type HttpFake } from '../support/fakes/http-fake.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const SECRET = 'private-addresses-secret';
const TOKEN = 'receiver-token-9d2e';
const RULE =
  'must not be a private, loopback, link-local or reserved address (HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny)';

const resolveHost: ResolveHost = (hostname) =>
  hostname === 'receiver.herald.test'
    ? Promise.resolve([{ address: '127.0.0.1', family: 4 }])
    : Promise.reject(
        Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }),
      );

interface Setup {
  t: TestHerald;
  client: HeraldClient;
  fake: HttpFake;
  port: string;
}

/** Herald (all roles) with the setting, its webhook provider's own url at `fake`. */
async function start(setting: 'deny' | 'allow'): Promise<Setup> {
  const fake = await startHttpFake();
  fake.respond({ status: 200 });
  const t = await startTestHerald({
    env: {
      HERALD_WEBHOOK_PRIVATE_ADDRESSES: setting,
      HERALD_PROVIDERS: JSON.stringify({
        webhook: [{ type: 'webhook', name: 'hook', url: `${fake.url}/default`, secret: SECRET }],
      }),
      HERALD_RETRY_BASE_MS: '100',
    },
    resolveHost,
  });
  const client = createHeraldClient({ baseUrl: t.h2cUrl });
  return { t, client, fake, port: new URL(fake.url).port };
}

/** Herald with the setting for the tests of the enclosing describe; the getter gives it to them. */
function heraldWith(setting: 'deny' | 'allow'): () => Setup {
  let setup: Setup | undefined;
  beforeAll(async () => {
    setup = await start(setting);
  });
  afterAll(async () => {
    setup?.client.close();
    await setup?.t.stop();
    await setup?.fake.close();
  });
  return () => {
    if (setup === undefined) throw new Error('Herald did not start');
    return setup;
  };
}

function sendHook(s: Setup, userId: string, to: string) {
  return s.client.send({
    userId,
    channel: Channel.WEBHOOK,
    to,
    content: { body: 'order shipped' },
  });
}

async function storedFor(s: Setup, userId: string): Promise<number> {
  const { rows } = await s.t.db.pool.query<{ n: string }>(
    'select count(*) as n from notification where user_id = $1',
    [userId],
  );
  return Number(rows[0]?.n);
}

/** The notification once it reached `status` (polled; the worker delivers in the background). */
async function settled(s: Setup, id: string, status: NotificationStatus) {
  await expect
    .poll(async () => (await s.client.getNotification({ id })).notification?.status, {
      timeout: 20_000,
      interval: 20,
    })
    .toBe(status);
  return s.client.getNotification({ id });
}

/** The paths the receiver was posted to for notification `id`. */
const pathsFor = (s: Setup, id: string) =>
  s.fake.requests.filter((r) => r.headers['herald-webhook-id'] === id).map((r) => r.path);

describe('HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny', () => {
  const herald = heraldWith('deny');

  it.each([
    ['a loopback IP', (port: string) => `http://127.0.0.1:${port}/hooks/${TOKEN}`],
    ['loopback as one number', () => 'http://2130706433/hooks'],
    ['loopback in hex, short form', () => 'http://0x7f.1/hooks'],
    ['an IPv4-mapped IPv6 loopback', () => 'http://[::ffff:127.0.0.1]/hooks'],
    ['the IPv6 loopback', () => 'http://[::1]/hooks'],
    ['the metadata service', () => 'http://169.254.169.254/latest/meta-data'],
    ['a private address', () => 'http://10.0.0.5/admin'],
    ['localhost', (port: string) => `http://localhost:${port}/hooks`],
    ['a name under .localhost', () => 'http://redis.localhost:6379/'],
  ])(
    'refuses a Send with INVALID_ARGUMENT naming to, storing nothing, when to is %s',
    async (label, urlFor) => {
      const userId = `u-refused-${label.replaceAll(' ', '-')}`;

      const s = herald();
      const err = await rejection(sendHook(s, userId, urlFor(s.port)));

      expect(err.code).toBe(Code.InvalidArgument);
      expect(violatedFields(err)).toEqual(['to']);
      expect(err.rawMessage).toContain(`to: ${RULE}`);
      expect(err.rawMessage).not.toContain(TOKEN);
      expect(await storedFor(s, userId)).toBe(0);
    },
  );

  it('accepts a Send to a host name that resolves to loopback, then FAILS it when delivering, without retrying; the receiver gets nothing', async () => {
    const s = herald();
    const { id } = await sendHook(
      s,
      'u-resolved',
      `http://receiver.herald.test:${s.port}/hooks/${TOKEN}`,
    );

    const { notification, events } = await settled(s, id, NotificationStatus.FAILED);

    expect(notification?.attempt).toBe(1);
    expect(notification?.lastError).toBe(`hook: refused to connect: ${REFUSED_AT_DELIVERY}`);
    expect(events.map((e) => NotificationStatus[e.status])).toEqual([
      'PENDING',
      'PROCESSING',
      'FAILED',
    ]);
    expect(events.map((e) => e.error).join('\n')).not.toContain(TOKEN);
    expect(pathsFor(s, id)).toEqual([]);
  });

  it("delivers a Send without to to the provider's own url, a loopback address: the operator's url is trusted", async () => {
    const s = herald();
    const { id } = await s.client.send({
      userId: 'u-default',
      channel: Channel.WEBHOOK,
      content: { body: 'order shipped' },
    });

    await settled(s, id, NotificationStatus.DELIVERED);

    expect(pathsFor(s, id)).toEqual(['/default']);
  });
});

describe('HERALD_WEBHOOK_PRIVATE_ADDRESSES=allow', () => {
  const herald = heraldWith('allow');

  it.each([
    ['a loopback IP', (port: string) => `http://127.0.0.1:${port}/hooks/${TOKEN}`],
    ['localhost', (port: string) => `http://localhost:${port}/hooks/${TOKEN}`],
  ])('delivers a Send whose to is %s to the receiver', async (_, urlFor) => {
    const s = herald();
    const { id } = await sendHook(s, 'u-allowed', urlFor(s.port));

    await settled(s, id, NotificationStatus.DELIVERED);

    expect(pathsFor(s, id)).toEqual([`/hooks/${TOKEN}`]);
  });
});

describe("a caller's failing receivers", () => {
  const herald = heraldWith('allow');

  it("do not open the provider's circuit for everyone else's webhooks", async () => {
    const s = herald();
    // Nothing listens on port 9 of loopback: every attempt fails transiently. Twice the breaker's
    // threshold (HERALD_BREAKER_FAILURES, 5) of them.
    const failing = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        sendHook(s, `u-failing-${i}`, 'http://127.0.0.1:9/hook'),
      ),
    );
    for (const { id } of failing) {
      await expect
        .poll(async () => (await s.client.getNotification({ id })).notification?.attempt ?? 0, {
          timeout: 20_000,
          interval: 20,
        })
        .toBeGreaterThanOrEqual(1);
    }
    const failed = await s.client.getNotification({ id: failing[0]?.id ?? '' });
    expect(failed.notification?.lastError).toMatch(/^hook: /);

    // Another caller's webhook, to a receiver that answers, goes out at once.
    const { id } = await sendHook(s, 'u-healthy', `http://127.0.0.1:${s.port}/hooks/${TOKEN}`);
    const { notification } = await settled(s, id, NotificationStatus.DELIVERED);

    expect(notification?.attempt).toBe(1);
    expect(pathsFor(s, id)).toEqual([`/hooks/${TOKEN}`]);
  });
});
