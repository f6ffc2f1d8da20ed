/**
 * The inbox through the GraphQL gateway: `me.inbox` pages, `me.unreadCount`, the
 * `markNotifications` and `markAllRead` mutations, the `myUnreadCount` subscription (current value
 * first, then every change, over SSE and WebSocket, and again from the current value after a
 * reconnect) and read-state changes on the `myNotifications` feed.
 */
import { Channel, createHeraldClient, type HeraldClient } from '@herald/client';
import { Code, ConnectError } from '@connectrpc/connect';
import type { FormattedExecutionResult } from 'graphql';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/domain/ids.js';
import type { GatewayContext } from '../../src/graphql/context.js';
import { createResolvers } from '../../src/graphql/resolvers.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { createCleanups } from '../support/cleanups.js';
import {
  subscribeSse,
  subscribeWs,
  type GraphqlRequest,
  type GraphqlSubscription,
  type Subscribe,
} from '../support/graphql.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { untilClockPastDeliveries, untilDelivered } from '../support/postgres.js';

const MASTER = 'gateway-inbox-master-secret-0123456789abcdef';
const TENANT = 'tenant-gw-inbox';
const WAIT = { timeout: 30_000, interval: 50 };

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
  // Every test's subscriptions are gone by now, so the api must hold no Watch stream for them.
  await expect.poll(watchStreams, WAIT).toBe(0);
});

afterAll(async () => {
  sender?.close();
  await t?.stop();
});

const newUser = (label: string) => `${label}-${uuidv7()}`;
const bearerFor = (userId: string) =>
  `Bearer ${issueUserToken({ master: MASTER, tenantId: TENANT, userId })}`;

function gatewayUrl(): string {
  if (t.gatewayUrl === null) throw new Error('the test Herald has no gateway');
  return t.gatewayUrl;
}

/** The api's open WatchNotifications streams, from its readiness report. */
async function watchStreams(): Promise<number> {
  const res = await fetch(`${t.httpUrl}/readyz`);
  const body = (await res.json()) as { counters?: { watchStreams?: number } };
  const n = body.counters?.watchStreams;
  if (typeof n !== 'number') throw new Error(`no watchStreams counter in ${JSON.stringify(body)}`);
  return n;
}

interface GqlResult<D> {
  data?: D | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql<D>(authorization: string, request: GraphqlRequest): Promise<GqlResult<D>> {
  const res = await fetch(gatewayUrl(), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify(request),
  });
  return (await res.json()) as GqlResult<D>;
}

/** The data of a request that must succeed. */
async function ok<D>(authorization: string, request: GraphqlRequest): Promise<D> {
  const res = await gql<D>(authorization, request);
  if (res.errors || !res.data) throw new Error(`unexpected answer ${JSON.stringify(res)}`);
  return res.data;
}

/** Sends `count` in-app notifications to `userId` one after another and waits for delivery. */
async function inboxItems(userId: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    ids.push(
      (await sender.send({ userId, channel: Channel.IN_APP, content: { title: `item ${i}` } })).id,
    );
  }
  await untilDelivered(t.db.pool, ids, WAIT);
  return ids;
}

const INBOX = `query Inbox($filter: InboxFilter, $first: Int, $after: String) {
  me {
    unreadCount
    inbox(filter: $filter, first: $first, after: $after) {
      edges { cursor node { id readAt archivedAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

interface InboxData {
  me: {
    unreadCount: number;
    inbox: {
      edges: {
        cursor: string;
        node: { id: string; readAt: string | null; archivedAt: string | null };
      }[];
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
    };
  };
}

const MARK = `mutation Mark($ids: [ID!]!, $action: InboxChange!) {
  markNotifications(ids: $ids, action: $action) {
    results { id outcome notification { id version readAt events { version inboxChange } } }
    unreadCount
  }
}`;

interface MarkData {
  markNotifications: {
    results: {
      id: string;
      outcome: string;
      notification: {
        id: string;
        version: number;
        readAt: string | null;
        events: { version: number; inboxChange: string | null }[];
      } | null;
    }[];
    unreadCount: number;
  };
}

const ALL_READ = `mutation { markAllRead { marked unreadCount } }`;
const UNREAD_COUNT = { query: 'subscription { myUnreadCount }' };

/** Every page of the caller's inbox with `filter`, `first` at a time. */
async function inboxPages(authorization: string, filter: string, first: number) {
  const ids: string[][] = [];
  let after: string | null = null;
  for (;;) {
    const data: InboxData = await ok<InboxData>(authorization, {
      query: INBOX,
      variables: { filter, first, after },
    });
    ids.push(data.me.inbox.edges.map((e) => e.node.id));
    if (!data.me.inbox.pageInfo.hasNextPage) return ids;
    after = data.me.inbox.pageInfo.endCursor;
    if (ids.length > 50) throw new Error('paging does not end');
  }
}

describe('the inbox over GraphQL', () => {
  it('pages me.inbox, marks items and all of them read, and counts what is unread', async () => {
    const user = newUser('gql-inbox');
    const me = bearerFor(user);
    const ids = await inboxItems(user, 5);
    const [a, b, c] = ids as [string, string, string];
    // Newest delivered first; concurrently sent items may be delivered in any order.
    const { rows } = await t.db.pool.query<{ id: string }>(
      `select id from notification where id = any($1) order by delivered_at desc, id desc`,
      [ids],
    );
    const newest = rows.map((r) => r.id);
    expect((await inboxPages(me, 'ALL', 2)).flat()).toEqual(newest);
    expect((await ok<InboxData>(me, { query: INBOX })).me.unreadCount).toBe(5);

    const read = await ok<MarkData>(me, {
      query: MARK,
      variables: { ids: [a, b, uuidv7()], action: 'READ' },
    });
    expect(read.markNotifications.results.map((r) => r.outcome)).toEqual([
      'CHANGED',
      'CHANGED',
      'NOT_FOUND',
    ]);
    const first = read.markNotifications.results[0]?.notification;
    expect(first?.readAt).not.toBeNull();
    // PENDING, DELIVERED (in_app has no PROCESSING step), then the READ.
    expect(first?.events).toEqual([
      { version: 1, inboxChange: null },
      { version: 2, inboxChange: null },
      { version: 3, inboxChange: 'READ' },
    ]);
    expect(read.markNotifications.unreadCount).toBe(3);

    const archived = await ok<MarkData>(me, {
      query: MARK,
      variables: { ids: [c], action: 'ARCHIVED' },
    });
    expect(archived.markNotifications.unreadCount).toBe(2);
    expect((await inboxPages(me, 'UNREAD', 10)).flat()).toEqual(
      newest.filter((id) => ![a, b, c].includes(id)),
    );
    expect((await inboxPages(me, 'ARCHIVED', 10)).flat()).toEqual([c]);
    expect((await inboxPages(me, 'ALL', 10)).flat()).toEqual(newest.filter((id) => id !== c));

    const again = await ok<MarkData>(me, { query: MARK, variables: { ids: [a], action: 'READ' } });
    expect(again.markNotifications.results[0]).toMatchObject({ outcome: 'UNCHANGED' });
    expect(again.markNotifications.results[0]?.notification?.version).toBe(3);

    expect(await ok(me, { query: ALL_READ })).toEqual({
      markAllRead: { marked: 2, unreadCount: 0 },
    });
    expect((await ok<InboxData>(me, { query: INBOX })).me.unreadCount).toBe(0);
  });

  it('pages by delivery: an item released after newer ones were delivered comes first, once', async () => {
    const user = newUser('gql-arrival');
    const me = bearerFor(user);
    const scheduled = await sender.send({
      userId: user,
      channel: Channel.IN_APP,
      content: { title: 'next week' },
      sendAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 7 * 86_400), nanos: 0 },
    });
    const newer = await inboxItems(user, 3);
    // Released once the database clock is past the millisecond of every delivery so far, so its
    // delivery cannot tie with theirs.
    await untilClockPastDeliveries(t.db.pool, user, WAIT);
    await sender.deliverNow({ id: scheduled.id });
    await expect
      .poll(async () => (await inboxPages(me, 'ALL', 10)).flat()[0], WAIT)
      .toBe(scheduled.id);
    // Cursors carry the delivery position: one item a page, each exactly once.
    const pages = await inboxPages(me, 'ALL', 1);
    expect(pages.every((p) => p.length === 1)).toBe(true);
    expect(pages.flat()[0]).toBe(scheduled.id);
    expect(pages.flat().slice(1).sort()).toEqual([...newer].sort());
  });

  it('refuses the inbox mutations to an API key as FORBIDDEN, and bad ids as BAD_USER_INPUT', async () => {
    const key = `Bearer ${apiKey}`;
    for (const request of [
      { query: ALL_READ },
      { query: MARK, variables: { ids: [uuidv7()], action: 'READ' } },
    ]) {
      const res = await gql(key, request);
      expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    // The user's own feeds too, each named.
    for (const field of ['myNotifications', 'myUnreadCount']) {
      const feed = subscribeSse(
        gatewayUrl(),
        { query: `subscription { ${field} ${field === 'myNotifications' ? '{ id }' : ''} }` },
        { authorization: key },
      );
      cleanups.add(() => feed.close());
      await expect.poll(() => feed.results.length, WAIT).toBe(1);
      expect(feed.results[0]?.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([
        [`${field} needs a user token, not an API key`, 'FORBIDDEN'],
      ]);
    }
    const bad = await gql(bearerFor(newUser('bad')), {
      query: MARK,
      variables: { ids: ['nope'], action: 'SEEN' },
    });
    expect(bad.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      fieldViolations: [{ field: 'ids[0]', description: 'must be a UUID' }],
    });
  });
});

describe('myUnreadCount', () => {
  it('ends cleanly when the client leaves while the first count is being read', async () => {
    const user = newUser('early-leave');
    const api = createHeraldClient({ baseUrl: t.h2cUrl });
    cleanups.add(() => api.close());
    // As a Connect client does: the call starts at once and only a read awaits its outcome,
    // which is a rejection once the gateway aborts it.
    const herald = {
      ...api,
      watchNotifications: (
        _req: Parameters<HeraldClient['watchNotifications']>[0],
        options?: Parameters<HeraldClient['watchNotifications']>[1],
      ) => {
        const call = new Promise<never>((_, reject) => {
          options?.signal?.addEventListener('abort', () =>
            reject(new ConnectError('This operation was aborted', Code.Canceled)),
          );
        });
        return { [Symbol.asyncIterator]: () => ({ next: () => call }) };
      },
    } as unknown as HeraldClient;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    cleanups.add(() => {
      process.off('unhandledRejection', onUnhandled);
    });
    const subscription = createResolvers({ maxSubscriptionsPerCaller: 5 }).Subscription
      ?.myUnreadCount as unknown as {
      subscribe: (parent: unknown, args: unknown, ctx: GatewayContext) => AsyncIterator<number>;
    };

    const counts = subscription.subscribe({}, {}, { authorization: bearerFor(user), herald });
    const first = counts.next();
    await counts.return?.();
    await first;
    // Node reports a rejection nobody handled once the current task's microtasks have run.
    await new Promise((resolve) => setImmediate(resolve));

    expect(unhandled).toEqual([]);
  });

  it('counts a delivery made before the api’s watch is live, for a user who had no notification', async () => {
    const user = newUser('late-watch');
    const api = createHeraldClient({ baseUrl: t.h2cUrl });
    cleanups.add(() => api.close());
    // The gateway's Watch call reaches the api only once the test lets it: a slow start.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const herald = {
      ...api,
      watchNotifications: (...args: Parameters<HeraldClient['watchNotifications']>) => ({
        async *[Symbol.asyncIterator]() {
          await held;
          yield* api.watchNotifications(...args);
        },
      }),
    } as HeraldClient;
    const ctx: GatewayContext = { authorization: bearerFor(user), herald };
    const subscription = createResolvers({ maxSubscriptionsPerCaller: 5 }).Subscription
      ?.myUnreadCount as unknown as {
      subscribe: (parent: unknown, args: unknown, ctx: GatewayContext) => AsyncIterator<number>;
    };
    const counts = subscription.subscribe({}, {}, ctx);
    cleanups.add(async () => {
      await counts.return?.();
    });

    expect(await counts.next()).toEqual({ done: false, value: 0 });
    await inboxItems(user, 1);
    release();
    expect(await counts.next()).toEqual({ done: false, value: 1 });
  });
});

describe.each([
  { transport: 'SSE', subscribe: subscribeSse },
  { transport: 'WebSocket', subscribe: subscribeWs },
])('myUnreadCount over $transport', ({ subscribe }: { subscribe: Subscribe }) => {
  type Data = { myUnreadCount: number };
  const counts = (sub: GraphqlSubscription<Data>) =>
    sub.results.map((r: FormattedExecutionResult<Data>) => {
      if (r.errors || !r.data) throw new Error(`unexpected payload ${JSON.stringify(r)}`);
      return r.data.myUnreadCount;
    });

  function open(authorization: string): GraphqlSubscription<Data> {
    const sub = subscribe<Data>(gatewayUrl(), UNREAD_COUNT, { authorization });
    cleanups.add(() => sub.close());
    return sub;
  }

  it('sends the current count first, then every new value, and the current one again after a reconnect', async () => {
    const user = newUser('count');
    const me = bearerFor(user);
    const [a, b] = (await inboxItems(user, 3)) as [string, string];
    const sub = open(me);
    await expect.poll(() => counts(sub), WAIT).toEqual([3]);

    await ok(me, { query: MARK, variables: { ids: [a], action: 'READ' } });
    await expect.poll(() => counts(sub), WAIT).toEqual([3, 2]);
    await ok(me, { query: MARK, variables: { ids: [b], action: 'ARCHIVED' } });
    await expect.poll(() => counts(sub), WAIT).toEqual([3, 2, 1]);
    await ok(me, { query: MARK, variables: { ids: [a], action: 'UNREAD' } });
    await expect.poll(() => counts(sub), WAIT).toEqual([3, 2, 1, 2]);
    await ok(me, { query: ALL_READ });
    await expect.poll(() => counts(sub), WAIT).toEqual([3, 2, 1, 2, 0]);
    // A new delivery counts once it is delivered (its earlier states change nothing).
    await inboxItems(user, 1);
    await expect.poll(() => counts(sub), WAIT).toEqual([3, 2, 1, 2, 0, 1]);

    // Changes while no one listens: the next subscription starts from the current value.
    await sub.close();
    await ok(me, { query: MARK, variables: { ids: [b], action: 'UNARCHIVED' } });
    const resumed = open(me);
    await expect.poll(() => counts(resumed), WAIT).toEqual([2]);
    await ok(me, { query: ALL_READ });
    await expect.poll(() => counts(resumed), WAIT).toEqual([2, 0]);
  });

  it('shows read-state changes on the myNotifications feed', async () => {
    const user = newUser('feed');
    const me = bearerFor(user);
    const [id] = (await inboxItems(user, 1)) as [string];
    type Feed = { myNotifications: { id: string; version: number; readAt: string | null } };
    const feed = subscribe<Feed>(
      gatewayUrl(),
      { query: 'subscription { myNotifications { id version readAt } }' },
      { authorization: me },
    );
    cleanups.add(() => feed.close());
    await expect.poll(() => feed.results.length, WAIT).toBe(1);
    await ok(me, { query: MARK, variables: { ids: [id], action: 'READ' } });
    await ok(me, { query: MARK, variables: { ids: [id], action: 'UNREAD' } });
    await expect.poll(() => feed.results.length, WAIT).toBe(3);
    const states = feed.results.map((r) => r.data?.myNotifications);
    expect(states.map((s) => [s?.id, s?.version, s?.readAt !== null])).toEqual([
      [id, 2, false],
      [id, 3, true],
      [id, 4, false],
    ]);
  });
});
