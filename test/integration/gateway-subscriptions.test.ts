/**
 * The gateway's subscriptions over both transports it speaks — Server-Sent Events and graphql-ws
 * over WebSocket — against a real Herald: every status change of every notification arrives, in
 * order; a client that drops and resumes with `afterVersion` misses and repeats nothing; the api's
 * Watch streams end when the clients leave; WebSocket connections authenticate on connect; and
 * two gateway replicas keep each user's feed to that user.
 */
import { Channel, createHeraldClient, type HeraldClient } from '@herald/client';
import type { FormattedExecutionResult } from 'graphql';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/domain/ids.js';
import { GRAPHQL_PATH, createGateway } from '../../src/graphql/gateway.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { createCleanups } from '../support/cleanups.js';
import {
  subscribeSse,
  subscribeWs,
  type GraphqlRequest,
  type GraphqlSubscription,
  type Subscribe,
  type SubscriptionOptions,
} from '../support/graphql.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { untilDelivered } from '../support/postgres.js';

const MASTER = 'gateway-subscriptions-master-secret-0123456789';
const TENANT = 'tenant-gw';
/** How long a wait for events may take before the test fails (a safety net, not a threshold). */
const WAIT = { timeout: 30_000 };

const STATE = 'id userId status version';
const FEED = { query: `subscription Feed { myNotifications { ${STATE} } }` };
const one = (id: string, afterVersion?: number) => ({
  query: `subscription One($id: ID!, $afterVersion: Int) {
    notificationUpdated(id: $id, afterVersion: $afterVersion) { ${STATE} }
  }`,
  variables: { id, afterVersion: afterVersion ?? null },
});

interface State {
  id: string;
  userId: string;
  status: string;
  version: number;
}
type Data = Record<string, State>;

let t: TestHerald;
let sender: HeraldClient;
let apiKey: string;
const cleanups = createCleanups();

beforeAll(async () => {
  t = await startTestHerald({
    gateway: true,
    env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: MASTER },
  });
  apiKey = await createTestApiKey(t.db.pool, TENANT, ['send', 'read']);
  sender = createHeraldClient({ baseUrl: t.h2cUrl, apiKey });
});

afterEach(async () => {
  await cleanups.runAll();
  // Every test's clients are gone by now, so the api must hold no Watch stream for them.
  await expect.poll(watchStreams, WAIT).toBe(0);
});

afterAll(async () => {
  sender?.close();
  await t?.stop();
});

function gatewayUrl(): string {
  if (t.gatewayUrl === null) throw new Error('the test Herald has no gateway');
  return t.gatewayUrl;
}

const newUser = (label: string) => `${label}-${uuidv7()}`;

function bearerFor(userId: string): string {
  return `Bearer ${issueUserToken({ master: MASTER, tenantId: TENANT, userId })}`;
}

/** Sends `count` notifications to `userId`, one after another (so in creation order). */
async function sendSequentially(userId: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await sendOne(userId, i));
  return ids;
}

/**
 * Sends an email, which the log provider delivers: every step of a delivery (FULL_LIFE), where an
 * in-app notification would go straight from PENDING to DELIVERED.
 */
async function sendOne(userId: string, i = 0): Promise<string> {
  const res = await sender.send({
    userId,
    channel: Channel.EMAIL,
    to: `${userId}@example.com`,
    content: { subject: `hello ${i}`, body: 'b' },
  });
  return res.id;
}

/** Waits until the store has every one of `ids` DELIVERED. */
const deliveredInDb = (ids: readonly string[]) => untilDelivered(t.db.pool, ids, WAIT);

/** The api's open WatchNotifications streams, from its readiness report. */
async function watchStreams(): Promise<number> {
  const res = await fetch(`${t.httpUrl}/readyz`);
  const body = (await res.json()) as { counters?: { watchStreams?: number } };
  const n = body.counters?.watchStreams;
  if (typeof n !== 'number') throw new Error(`no watchStreams counter in ${JSON.stringify(body)}`);
  return n;
}

/** The notification states a subscription received; a payload with errors fails the test. */
function statesOf(sub: GraphqlSubscription<Data>): State[] {
  return sub.results.map((r: FormattedExecutionResult<Data>) => {
    const state = r.data ? Object.values(r.data)[0] : undefined;
    if (r.errors || state === undefined) throw new Error(`unexpected payload ${JSON.stringify(r)}`);
    return state;
  });
}

/** Each notification's states, in arrival order, as `[status, version]`. */
function byNotification(states: readonly State[]): Map<string, [string, number][]> {
  const map = new Map<string, [string, number][]>();
  for (const s of states) {
    const list = map.get(s.id) ?? [];
    list.push([s.status, s.version]);
    map.set(s.id, list);
  }
  return map;
}

const deliveredCount = (sub: GraphqlSubscription<Data>, ids: readonly string[]) => {
  const wanted = new Set(ids);
  return statesOf(sub).filter((s) => wanted.has(s.id) && s.status === 'DELIVERED').length;
};

const FULL_LIFE: [string, number][] = [
  ['PENDING', 1],
  ['PROCESSING', 2],
  ['DELIVERED', 3],
];

/**
 * Opens `request` and registers its close as a cleanup. With `initial`, waits for that many
 * payloads: the api sends the current state only once its live subscription is in place, so from
 * then on nothing new is missed.
 */
async function open(
  subscribe: Subscribe,
  url: string,
  request: GraphqlRequest,
  options: SubscriptionOptions<Data> & { initial?: number } = {},
): Promise<GraphqlSubscription<Data>> {
  const sub = subscribe<Data>(url, request, options);
  cleanups.add(() => sub.close());
  if (options.initial !== undefined) {
    await expect.poll(() => sub.results.length, WAIT).toBeGreaterThanOrEqual(options.initial);
  }
  return sub;
}

describe.each([
  { transport: 'SSE', subscribe: subscribeSse },
  { transport: 'WebSocket', subscribe: subscribeWs },
])('Subscription over $transport', ({ subscribe }) => {
  it('sends every status change of each notification, in order, when following myNotifications', async () => {
    const user = newUser('feed');
    // More than the feed's initial 20, all settled before it opens.
    const earlier = await sendSequentially(user, 25);
    await deliveredInDb(earlier);
    const feed = await open(subscribe, gatewayUrl(), FEED, {
      authorization: bearerFor(user),
      initial: 20,
    });
    const initial = statesOf(feed).slice(0, 20);
    expect(new Set(initial.map((s) => s.id))).toEqual(new Set(earlier.slice(-20)));
    expect(initial.every((s) => s.status === 'DELIVERED' && s.version === 3)).toBe(true);
    expect(await watchStreams()).toBeGreaterThan(0);

    const sent = await Promise.all(Array.from({ length: 50 }, (_, i) => sendOne(user, i)));
    await expect.poll(() => deliveredCount(feed, sent), WAIT).toBe(sent.length);

    const states = statesOf(feed);
    expect(states.every((s) => s.userId === user)).toBe(true);
    const lives = byNotification(states.slice(20));
    expect([...lives.keys()].sort()).toEqual([...sent].sort());
    for (const id of sent) expect(lives.get(id), id).toEqual(FULL_LIFE);
  });

  it('misses and repeats nothing when a client resumes with notificationUpdated(afterVersion) after a disconnect', async () => {
    const user = newUser('resume');
    const [primer] = await sendSequentially(user, 1);
    await deliveredInDb([primer as string]);
    // Leaves right after the new notification's first state, before it is delivered.
    const feed = await open(subscribe, gatewayUrl(), FEED, {
      authorization: bearerFor(user),
      initial: 1,
      onNext: (result, sub) => {
        if (result.data?.myNotifications?.id !== primer) void sub.close();
      },
    });
    const id = await sendOne(user);
    await feed.ended;
    const before = statesOf(feed).slice(1);
    expect(before).toEqual([{ id, userId: user, status: 'PENDING', version: 1 }]);

    // Changes happen while no one watches.
    await deliveredInDb([id]);
    const last = before.at(-1)?.version ?? 0;
    const resumed = await open(subscribe, gatewayUrl(), one(id, last), {
      authorization: bearerFor(user),
    });
    await expect.poll(() => deliveredCount(resumed, [id]), WAIT).toBe(1);
    const after = statesOf(resumed);
    expect(after.map((s) => [s.status, s.version])).toEqual(FULL_LIFE.slice(1));
    expect([...before, ...after].map((s) => [s.status, s.version])).toEqual(FULL_LIFE);
  });

  it('ends the api’s Watch streams when every client has left', async () => {
    const user = newUser('leave');
    const ids = await sendSequentially(user, 2);
    await deliveredInDb(ids);
    const authorization = bearerFor(user);
    // Idle subscriptions: each has its current state and waits on the api for the next change.
    const subs = [
      await open(subscribe, gatewayUrl(), FEED, { authorization, initial: 2 }),
      ...(await Promise.all(
        ids.map((id) => open(subscribe, gatewayUrl(), one(id), { authorization, initial: 1 })),
      )),
    ];
    expect(await watchStreams()).toBe(subs.length);

    await Promise.all(subs.map((s) => s.close()));
    await expect.poll(watchStreams, WAIT).toBe(0);
  });

  it('keeps each user’s feed to that user’s notifications when the users are on two gateway replicas', async () => {
    const urls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const gateway = createGateway({
        apiUrl: t.h2cUrl,
        logger: pino({ level: 'warn' }),
        production: false,
        maxSubscriptionsPerCaller: t.config.gateway.maxSubscriptionsPerCaller,
        maxBatch: t.config.gateway.maxBatch,
      });
      cleanups.add(() => gateway.close());
      const port = await gateway.listen('127.0.0.1', 0);
      urls.push(`http://127.0.0.1:${port}${GRAPHQL_PATH}`);
    }
    const users = [newUser('replica-a'), newUser('replica-b')];
    const primers = await Promise.all(users.map((u) => sendOne(u)));
    await deliveredInDb(primers);
    const feeds = await Promise.all(
      users.map((u, i) =>
        open(subscribe, urls[i] as string, FEED, { authorization: bearerFor(u), initial: 1 }),
      ),
    );

    const sent: string[][] = [[], []];
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        sent[0]?.push(await sendOne(users[0] as string, i));
        sent[1]?.push(await sendOne(users[1] as string, i));
      }),
    );
    for (const [i, feed] of feeds.entries()) {
      await expect.poll(() => deliveredCount(feed, sent[i] ?? []), WAIT).toBe(10);
    }

    for (const [i, feed] of feeds.entries()) {
      const states = statesOf(feed);
      expect(states.every((s) => s.userId === users[i])).toBe(true);
      const lives = byNotification(states);
      expect([...lives.keys()].sort()).toEqual([primers[i], ...(sent[i] ?? [])].sort());
      for (const id of sent[i] ?? []) expect(lives.get(id), id).toEqual(FULL_LIFE);
    }
  });
});

describe('WebSocket connection auth', () => {
  it('closes the connection with 4403 when the credential is missing or bad', async () => {
    const user = newUser('ws-auth');
    const expired = issueUserToken({
      master: MASTER,
      tenantId: TENANT,
      userId: user,
      ttlSeconds: 60,
      now: Date.now() - 3_600_000,
    });
    const forged = issueUserToken({
      master: 'another-master-secret-0123456789abcdef',
      tenantId: TENANT,
      userId: user,
    });
    for (const [authorization, why] of [
      [undefined, 'missing credentials'],
      ['Bearer not-a-token', 'three dot-separated parts'],
      [`Bearer ${expired}`, 'expired'],
      [`Bearer ${forged}`, 'signature'],
      ['Bearer hk_000000000000_' + 'A'.repeat(43), 'API key'],
    ] as const) {
      const sub = await open(subscribeWs, gatewayUrl(), FEED, { authorization });
      await expect(sub.ended, String(authorization)).rejects.toMatchObject({
        cause: { code: 4403, reason: expect.stringMatching(/^Forbidden: /) as string },
      });
      const closed = (await sub.ended.catch((e: unknown) => e)) as { cause: { reason: string } };
      expect(closed.cause.reason).toContain(why);
      expect(sub.results).toEqual([]);
    }
    expect(await watchStreams()).toBe(0);
  });

  it('starts subscriptions when the credential is a good user token or API key', async () => {
    const user = newUser('ws-auth');
    const id = await sendOne(user);
    await deliveredInDb([id]);
    const feed = await open(subscribeWs, gatewayUrl(), FEED, {
      authorization: bearerFor(user),
      initial: 1,
    });
    expect(statesOf(feed)).toEqual([{ id, userId: user, status: 'DELIVERED', version: 3 }]);
    const watch = await open(subscribeWs, gatewayUrl(), one(id), {
      authorization: `Bearer ${apiKey}`,
      initial: 1,
    });
    expect(statesOf(watch)).toEqual([{ id, userId: user, status: 'DELIVERED', version: 3 }]);
  });
});
