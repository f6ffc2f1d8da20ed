/**
 * InboxService against a real Herald: the three listings page every item exactly once, newest
 * delivered first (a scheduled or late item arrives at the top); marks
 * (seen, read, unread, archived, unarchived; single and bulk; all read) change only what is not
 * already so, each change a history event and a live status event in order; a user token sees and
 * marks only its own inbox; the unread count stays exact under many concurrent marks and is read
 * from its partial index.
 */
import { randomUUID } from 'node:crypto';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import {
  Channel,
  InboxChange,
  InboxFilter,
  MarkOutcome,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type Notification,
  type WatchNotificationsResponse,
} from '@herald/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createInbox } from '../../src/domain/inbox.js';
import type { StatusEvent } from '../../src/domain/status-event.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { connectNats } from '../../src/infra/nats/connection.js';
import { createStatusBus } from '../../src/infra/nats/status-bus.js';
import { createInboxStore, UNREAD_COUNT_SQL } from '../../src/infra/postgres/inbox-store.js';
import { createTestApiKey } from '../support/access.js';
import { createCleanups } from '../support/cleanups.js';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { untilClockPastDeliveries, untilDelivered } from '../support/postgres.js';

const MASTER = 'inbox-test-master-secret-0123456789abcdef';
const TENANT = 'tenant-inbox';
const WAIT = { timeout: 30_000, interval: 50 };

let t: TestHerald;
/** An API key with `send` and `read`. */
let service: HeraldClient;
const cleanups = createCleanups();

beforeAll(async () => {
  t = await startTestHerald({
    env: {
      HERALD_AUTH: 'required',
      HERALD_TOKEN_SECRET: MASTER,
      // The concurrency test makes hundreds of calls at once from one caller.
      HERALD_CALLS_PER_SECOND: '100000',
    },
  });
  service = createHeraldClient({
    baseUrl: t.h2cUrl,
    apiKey: await createTestApiKey(t.db.pool, TENANT, ['send', 'read']),
  });
});

afterEach(() => cleanups.runAll());

afterAll(async () => {
  service?.close();
  await t?.stop();
});

const newUser = (label: string) => `${label}-${randomUUID()}`;

/** A client speaking for `userId` with a user token. */
function asUser(userId: string, tenantId = TENANT): HeraldClient {
  const client = createHeraldClient({
    baseUrl: t.h2cUrl,
    apiKey: issueUserToken({ master: MASTER, tenantId, userId, ttlSeconds: 600 }),
  });
  cleanups.add(() => client.close());
  return client;
}

/** Waits until the store has every one of `ids` DELIVERED. */
const delivered = (ids: readonly string[]) => untilDelivered(t.db.pool, ids, WAIT);

/** Sends `count` in-app notifications to `userId` one after another, and waits for delivery. */
async function inboxItems(userId: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await service.send({
      userId,
      channel: Channel.IN_APP,
      content: { title: `item ${i}`, body: 'b' },
    });
    ids.push(res.id);
  }
  await delivered(ids);
  return ids;
}

async function mark(userId: string, ids: string[], action: InboxChange) {
  return service.inbox.markInbox({ userId, ids, action });
}

const outcomes = (res: { results: { outcome: MarkOutcome }[] }) =>
  res.results.map((r) => MarkOutcome[r.outcome]);

/** Every page of a listing, `pageSize` at a time; `between` runs after each page. */
async function allPages(
  client: HeraldClient,
  req: { userId?: string; filter: InboxFilter },
  pageSize: number,
  between: () => Promise<void> = async () => {},
): Promise<string[][]> {
  const pages: string[][] = [];
  let pageToken = '';
  do {
    const res = await client.inbox.listInbox({ ...req, pageSize, pageToken });
    pages.push(res.notifications.map((n) => n.id));
    pageToken = res.nextPageToken;
    await between();
    if (pages.length > 100) throw new Error('paging does not end');
  } while (pageToken !== '');
  return pages;
}

/**
 * The inbox items of `userId` matching `where`, newest delivered first, straight from the
 * database. Concurrently sent items may be delivered in any order, so tests compare listings with
 * this rather than with the order they sent in.
 */
async function storedIds(userId: string, where: string): Promise<string[]> {
  const { rows } = await t.db.pool.query<{ id: string }>(
    `select id from notification where user_id = $1 and channel = 'in_app'
       and status = 'DELIVERED' and ${where}
     order by delivered_at desc, id desc`,
    [userId],
  );
  return rows.map((r) => r.id);
}

/** The history of `id` after `afterVersion`: [version, inbox change name] pairs. */
async function inboxHistory(id: string, afterVersion: number): Promise<[number, string | null][]> {
  const { rows } = await t.db.pool.query<{ version: number; inbox_change: string | null }>(
    `select version, inbox_change from notification_event
     where notification_id = $1 and version > $2 order by version`,
    [id, afterVersion],
  );
  return rows.map((r) => [r.version, r.inbox_change]);
}

/** Collects a Watch stream's responses until the test ends. */
function collect(stream: (signal: AbortSignal) => AsyncIterable<WatchNotificationsResponse>) {
  const abort = new AbortController();
  const received: WatchNotificationsResponse[] = [];
  const done = (async () => {
    try {
      for await (const r of stream(abort.signal)) received.push(r);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  })();
  done.catch(() => {});
  cleanups.add(async () => {
    abort.abort();
    await done.catch(() => {});
  });
  return received;
}

describe('ListInbox', () => {
  it('lists UNREAD, ALL and ARCHIVED items newest delivered first, each exactly once across pages', async () => {
    const user = newUser('list');
    const ids = await inboxItems(user, 9);
    // Not inbox items: another channel, and an in-app one not delivered yet.
    await service.send({
      userId: user,
      channel: Channel.WEBHOOK,
      to: 'http://127.0.0.1:9/hook',
      content: { body: 'x' },
    });
    await service.send({
      userId: user,
      channel: Channel.IN_APP,
      content: { title: 'later' },
      sendAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 86_400), nanos: 0 },
    });
    const [a, b, c, d] = ids as [string, string, string, string];
    await mark(user, [a, b], InboxChange.READ);
    await mark(user, [c, d], InboxChange.ARCHIVED);

    const expected = {
      [InboxFilter.UNREAD]: await storedIds(user, 'read_at is null and archived_at is null'),
      [InboxFilter.ALL]: await storedIds(user, 'archived_at is null'),
      [InboxFilter.ARCHIVED]: await storedIds(user, 'archived_at is not null'),
    };
    expect(expected[InboxFilter.UNREAD]).toHaveLength(5);
    expect(expected[InboxFilter.ALL]).toHaveLength(7);
    expect([...expected[InboxFilter.ARCHIVED]].sort()).toEqual([c, d].sort());
    expect([...expected[InboxFilter.ALL]].sort()).toEqual(
      ids.filter((id) => id !== c && id !== d).sort(),
    );
    for (const filter of [InboxFilter.UNREAD, InboxFilter.ALL, InboxFilter.ARCHIVED] as const) {
      const pages = await allPages(service, { userId: user, filter }, 2);
      expect(pages.flat(), InboxFilter[filter]).toEqual(expected[filter]);
      expect(pages.slice(0, -1).every((p) => p.length === 2)).toBe(true);
    }
    // Unset filter: ALL.
    const unset = await service.inbox.listInbox({ userId: user, pageSize: 500 });
    expect(unset.notifications.map((n) => n.id)).toEqual(expected[InboxFilter.ALL]);
    expect(unset.nextPageToken).toBe('');
  });

  it('returns every item once while new items arrive and items are read during paging', async () => {
    const user = newUser('stable');
    const before = await inboxItems(user, 6);
    const listed = await storedIds(user, 'true');
    expect([...listed].sort()).toEqual([...before].sort());
    let turn = 0;
    const pages = await allPages(
      service,
      { userId: user, filter: InboxFilter.ALL },
      2,
      async () => {
        // A new item (delivered after every listed one: it arrives above them), and a change of
        // one not listed yet (its version moves, its place does not).
        if (turn < 2) await inboxItems(user, 1);
        const next = listed.at(-1 - turn) as string;
        turn += 1;
        if (turn <= 2) await mark(user, [next], InboxChange.READ);
      },
    );
    expect(pages.flat()).toEqual(listed);
    expect((await storedIds(user, 'true')).slice(2)).toEqual(listed);
    expect(await storedIds(user, 'read_at is not null')).toEqual(listed.slice(-2));
  });

  it('lists an item scheduled ahead at the top once it is delivered, above items created after it', async () => {
    const user = newUser('arrival');
    const scheduled = await service.send({
      userId: user,
      channel: Channel.IN_APP,
      content: { title: 'next week' },
      sendAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 7 * 86_400), nanos: 0 },
    });
    const newer = await inboxItems(user, 3);
    const top = await service.inbox.listInbox({ userId: user, pageSize: 1 });
    expect(newer).toContain(top.notifications[0]?.id);

    // Released once the database clock is past the millisecond of every delivery so far, so its
    // delivery cannot tie with theirs (ties go to the greater id, which is theirs).
    await untilClockPastDeliveries(t.db.pool, user, WAIT);
    // It arrives last, so it is listed first.
    await service.deliverNow({ id: scheduled.id });
    await delivered([scheduled.id]);
    const expected = await storedIds(user, 'true');
    expect(expected).toEqual([scheduled.id, ...(await storedIds(user, `id <> '${scheduled.id}'`))]);
    const pages = await allPages(service, { userId: user, filter: InboxFilter.ALL }, 1);
    expect(pages.flat()).toEqual(expected);
    const { notifications } = await service.inbox.listInbox({
      userId: user,
      filter: InboxFilter.UNREAD,
    });
    const [first, ...rest] = notifications as [Notification, ...Notification[]];
    expect(first.id).toBe(scheduled.id);
    // Created before every other item, delivered after all of them.
    const ms = (ts: Timestamp | undefined) =>
      ts === undefined ? NaN : timestampDate(ts).getTime();
    for (const n of rest) {
      expect(ms(first.createdAt)).toBeLessThanOrEqual(ms(n.createdAt));
      expect(ms(first.deliveredAt)).toBeGreaterThan(ms(n.deliveredAt));
    }
    expect(rest.map((n) => n.id).sort()).toEqual([...newer].sort());
  });

  it('shows each item with its inbox state', async () => {
    const user = newUser('state');
    const [id] = (await inboxItems(user, 1)) as [string];
    await mark(user, [id], InboxChange.READ);
    const { notifications } = await service.inbox.listInbox({ userId: user });
    const [n] = notifications as [Notification];
    expect(n.id).toBe(id);
    expect(n.status).toBe(NotificationStatus.DELIVERED);
    expect(n.readAt).toBeDefined();
    expect(n.seenAt).toEqual(n.readAt);
    expect(n.archivedAt).toBeUndefined();
  });
});

describe('MarkInbox', () => {
  it('marks seen, read, unread, archived and unarchived, singly and in bulk', async () => {
    const user = newUser('mark');
    const ids = await inboxItems(user, 4);
    const [a, b, c, d] = ids as [string, string, string, string];
    const count = async () =>
      Number((await service.inbox.getUnreadCount({ userId: user })).unreadCount);
    expect(await count()).toBe(4);

    const seen = await mark(user, [a], InboxChange.SEEN);
    expect(outcomes(seen)).toEqual(['CHANGED']);
    expect(seen.results[0]?.notification?.seenAt).toBeDefined();
    expect(seen.results[0]?.notification?.readAt).toBeUndefined();
    expect(Number(seen.unreadCount)).toBe(4);

    const read = await mark(user, [a, b, c], InboxChange.READ);
    expect(outcomes(read)).toEqual(['CHANGED', 'CHANGED', 'CHANGED']);
    expect(read.results.map((r) => r.id)).toEqual([a, b, c]);
    // Reading keeps the first seen time, and sets it when the item was never seen.
    expect(read.results[0]?.notification?.seenAt).toEqual(seen.results[0]?.notification?.seenAt);
    expect(read.results[1]?.notification?.seenAt).toEqual(read.results[1]?.notification?.readAt);
    expect(Number(read.unreadCount)).toBe(1);

    const unread = await mark(user, [b], InboxChange.UNREAD);
    expect(outcomes(unread)).toEqual(['CHANGED']);
    expect(unread.results[0]?.notification?.readAt).toBeUndefined();
    expect(unread.results[0]?.notification?.seenAt).toBeDefined();
    expect(Number(unread.unreadCount)).toBe(2);

    // Archived items are not unread, whatever their read state.
    const archived = await mark(user, [b, d], InboxChange.ARCHIVED);
    expect(outcomes(archived)).toEqual(['CHANGED', 'CHANGED']);
    expect(archived.results.every((r) => r.notification?.archivedAt !== undefined)).toBe(true);
    expect(Number(archived.unreadCount)).toBe(0);

    const back = await mark(user, [d], InboxChange.UNARCHIVED);
    expect(outcomes(back)).toEqual(['CHANGED']);
    expect(back.results[0]?.notification?.archivedAt).toBeUndefined();
    expect(Number(back.unreadCount)).toBe(1);
    expect(await count()).toBe(1);

    const { rows } = await t.db.pool.query<{ id: string; version: number }>(
      'select id, version from notification where id = any($1)',
      [ids],
    );
    // DELIVERED is version 2 (PENDING -> DELIVERED: in_app has no PROCESSING step); then one
    // version per change.
    expect(Object.fromEntries(rows.map((r) => [r.id, r.version]))).toEqual({
      [a]: 4,
      [b]: 5,
      [c]: 3,
      [d]: 4,
    });
    expect(await inboxHistory(b, 2)).toEqual([
      [3, 'READ'],
      [4, 'UNREAD'],
      [5, 'ARCHIVED'],
    ]);
  });

  it('changes, bumps and records nothing when an item already is in that state', async () => {
    const user = newUser('idempotent');
    const [a, b] = (await inboxItems(user, 2)) as [string, string];
    await mark(user, [a], InboxChange.READ);
    await mark(user, [b], InboxChange.SEEN);
    const watched = collect((signal) =>
      service.watchNotifications({ target: { case: 'notificationId', value: a } }, { signal }),
    );
    await expect.poll(() => watched.length, WAIT).toBe(1);

    const again = await mark(user, [a, b], InboxChange.READ);
    expect(outcomes(again)).toEqual(['UNCHANGED', 'CHANGED']);
    expect(Number(again.results[0]?.notification?.version)).toBe(3);
    for (const action of [InboxChange.READ, InboxChange.SEEN, InboxChange.UNARCHIVED]) {
      expect(outcomes(await mark(user, [a], action)), InboxChange[action]).toEqual(['UNCHANGED']);
    }
    expect(await inboxHistory(a, 2)).toEqual([[3, 'READ']]);
    // The next event the watcher gets is the next real change: nothing came in between.
    await mark(user, [a], InboxChange.ARCHIVED);
    await expect.poll(() => watched.length, WAIT).toBe(2);
    expect(watched.map((w) => [Number(w.event?.version), w.event?.inboxChange])).toEqual([
      [3, InboxChange.READ],
      [4, InboxChange.ARCHIVED],
    ]);
  });

  it('reports unknown ids, other users’ and non-inbox notifications as NOT_FOUND, and changes none', async () => {
    const user = newUser('found');
    const other = newUser('other');
    const [mine] = (await inboxItems(user, 1)) as [string];
    const [theirs] = (await inboxItems(other, 1)) as [string];
    const email = await service.send({
      userId: user,
      channel: Channel.WEBHOOK,
      to: 'http://127.0.0.1:9/hook',
      content: { body: 'x' },
    });
    const scheduled = await service.send({
      userId: user,
      channel: Channel.IN_APP,
      content: { title: 'later' },
      sendAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 86_400), nanos: 0 },
    });
    const unknown = randomUUID();
    const res = await mark(
      user,
      [theirs, mine, email.id, scheduled.id, unknown.toUpperCase()],
      InboxChange.READ,
    );
    expect(outcomes(res)).toEqual(['NOT_FOUND', 'CHANGED', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
    expect(res.results[4]?.id).toBe(unknown.toUpperCase());
    expect(
      res.results.filter((r) => r.outcome === MarkOutcome.NOT_FOUND).map((r) => r.notification),
    ).toEqual([undefined, undefined, undefined, undefined]);
    const { rows } = await t.db.pool.query<{ n: number }>(
      'select count(*)::int as n from notification where id = any($1) and read_at is not null',
      [[theirs, email.id, scheduled.id]],
    );
    expect(rows[0]?.n).toBe(0);
    expect(await inboxHistory(theirs, 2)).toEqual([]);
  });

  it('names every bad field as INVALID_ARGUMENT', async () => {
    const err = await rejection(
      service.inbox.markInbox({ userId: '', ids: [randomUUID(), 'nope'], action: 0 }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err)).toEqual(['user_id', 'ids[1]', 'action']);

    const id = randomUUID();
    const repeat = await rejection(
      service.inbox.markInbox({
        userId: 'u',
        ids: [id, id.toUpperCase()],
        action: 99 as InboxChange,
      }),
    );
    expect(violatedFields(repeat)).toEqual(['ids[1]', 'action']);

    const none = await rejection(
      service.inbox.markInbox({ userId: 'u', action: InboxChange.READ }),
    );
    expect(violatedFields(none)).toEqual(['ids']);
    const tooMany = await rejection(
      service.inbox.markInbox({
        userId: 'u',
        ids: Array.from({ length: 101 }, () => randomUUID()),
        action: InboxChange.READ,
      }),
    );
    expect(violatedFields(tooMany)).toEqual(['ids']);

    const list = await rejection(
      service.inbox.listInbox({
        userId: '',
        filter: 7 as InboxFilter,
        pageSize: 501,
        pageToken: 'garbage',
      }),
    );
    expect(violatedFields(list)).toEqual(['user_id', 'filter', 'page_size', 'page_token']);
    // A ListNotifications token is no inbox position.
    const listed = await service.listNotifications({ pageSize: 1 });
    if (listed.nextPageToken !== '') {
      const foreign = await rejection(
        service.inbox.listInbox({ userId: 'u', pageToken: listed.nextPageToken }),
      );
      expect(violatedFields(foreign)).toEqual(['page_token']);
    }
    for (const call of [
      () => service.inbox.getUnreadCount({}),
      () => service.inbox.markAllRead({ userId: 'x'.repeat(129) }),
    ]) {
      const e = await rejection(call());
      expect(e.code).toBe(Code.InvalidArgument);
      expect(violatedFields(e)).toEqual(['user_id']);
    }
  });
});

describe('MarkAllRead', () => {
  it('marks every unread item read, each with one READ event, leaving archived ones alone', async () => {
    const user = newUser('all-read');
    const ids = await inboxItems(user, 5);
    const [a, b, c] = ids as [string, string, string];
    await mark(user, [a], InboxChange.READ);
    await mark(user, [b], InboxChange.ARCHIVED);
    await mark(user, [c], InboxChange.SEEN);
    // Starts with the five items' current states, once it is live.
    const watched = collect((signal) =>
      service.watchNotifications(
        { target: { case: 'userId', value: user }, initialCount: 5 },
        { signal },
      ),
    );
    await expect.poll(() => watched.length, WAIT).toBe(5);

    const res = await service.inbox.markAllRead({ userId: user });
    expect(Number(res.marked)).toBe(3);
    expect(Number(res.unreadCount)).toBe(0);
    await expect.poll(() => watched.length, WAIT).toBe(8);
    const reads = watched.slice(5);
    expect(reads.every((w) => w.event?.inboxChange === InboxChange.READ)).toBe(true);
    expect(reads.map((w) => w.notification?.id).sort()).toEqual([c, ...ids.slice(3)].sort());
    expect(await storedIds(user, 'read_at is null')).toEqual([b]);

    const again = await service.inbox.markAllRead({ userId: user });
    expect(Number(again.marked)).toBe(0);
    expect(await inboxHistory(c, 2)).toEqual([
      [3, 'SEEN'],
      [4, 'READ'],
    ]);
  });

  it('marks an inbox larger than one statement’s batch, in several', async () => {
    const user = newUser('batches');
    const ids = await inboxItems(user, 7);
    const published: StatusEvent[] = [];
    const inbox = createInbox({
      store: createInboxStore(t.db.pool),
      events: {
        publish: (e) => published.push(e),
        subscribe: () => {
          throw new Error('not used');
        },
      },
      markAllBatch: 2,
    });
    const res = await inbox.markAllRead(TENANT, user);
    expect(res).toEqual({ marked: 7, unreadCount: 0 });
    expect(published.map((e) => e.notification.id).sort()).toEqual([...ids].sort());
    expect(published.every((e) => e.event.inboxChange === 'READ')).toBe(true);
    expect(await storedIds(user, 'read_at is null')).toEqual([]);
  });
});

describe('access', () => {
  it('lets a user token read and mark only its own inbox, leaking nothing of another user’s', async () => {
    const alice = newUser('alice');
    const bob = newUser('bob');
    const [aliceItem] = (await inboxItems(alice, 1)) as [string];
    const [bobItem] = (await inboxItems(bob, 1)) as [string];
    const asAlice = asUser(alice);

    const { notifications } = await asAlice.inbox.listInbox({});
    expect(notifications.map((n) => n.id)).toEqual([aliceItem]);
    expect(Number((await asAlice.inbox.getUnreadCount({ userId: alice })).unreadCount)).toBe(1);

    const res = await asAlice.inbox.markInbox({
      ids: [bobItem, aliceItem],
      action: InboxChange.ARCHIVED,
    });
    expect(outcomes(res)).toEqual(['NOT_FOUND', 'CHANGED']);
    expect(res.results[0]?.notification).toBeUndefined();
    expect(await storedIds(bob, 'archived_at is null')).toEqual([bobItem]);
    expect(Number((await asAlice.inbox.markAllRead({})).marked)).toBe(0);
    expect(await storedIds(bob, 'read_at is null')).toEqual([bobItem]);

    for (const call of [
      () => asAlice.inbox.listInbox({ userId: bob }),
      () => asAlice.inbox.getUnreadCount({ userId: bob }),
      () => asAlice.inbox.markInbox({ userId: bob, ids: [bobItem], action: InboxChange.READ }),
      () => asAlice.inbox.markAllRead({ userId: bob }),
    ]) {
      expect((await rejection(call())).code).toBe(Code.PermissionDenied);
    }
    // The same token in another tenant finds nothing.
    const elsewhere = asUser(alice, 'tenant-elsewhere');
    expect((await elsewhere.inbox.listInbox({})).notifications).toEqual([]);
    expect(
      outcomes(await elsewhere.inbox.markInbox({ ids: [aliceItem], action: InboxChange.READ })),
    ).toEqual(['NOT_FOUND']);
    // Still no more than reads and its inbox.
    expect(
      (
        await rejection(
          asAlice.send({ userId: alice, channel: Channel.IN_APP, content: { title: 'x' } }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
  });

  it('needs the read scope to list and count, and the send scope to mark, with an API key', async () => {
    const user = newUser('scopes');
    const [id] = (await inboxItems(user, 1)) as [string];
    const reader = createHeraldClient({
      baseUrl: t.h2cUrl,
      apiKey: await createTestApiKey(t.db.pool, TENANT, ['read']),
    });
    const sender = createHeraldClient({
      baseUrl: t.h2cUrl,
      apiKey: await createTestApiKey(t.db.pool, TENANT, ['send']),
    });
    cleanups.add(() => reader.close());
    cleanups.add(() => sender.close());
    expect((await reader.inbox.listInbox({ userId: user })).notifications).toHaveLength(1);
    // Each call starts when its turn comes: a refusal that arrived before the loop awaited it
    // would be an unhandled rejection.
    for (const call of [
      () => reader.inbox.markInbox({ userId: user, ids: [id], action: InboxChange.READ }),
      () => reader.inbox.markAllRead({ userId: user }),
      () => sender.inbox.listInbox({ userId: user }),
      () => sender.inbox.getUnreadCount({ userId: user }),
    ]) {
      expect((await rejection(call())).code).toBe(Code.PermissionDenied);
    }
    expect(
      outcomes(await sender.inbox.markInbox({ userId: user, ids: [id], action: InboxChange.READ })),
    ).toEqual(['CHANGED']);
    // Another tenant's key finds nothing of this tenant's.
    const stranger = createHeraldClient({
      baseUrl: t.h2cUrl,
      apiKey: await createTestApiKey(t.db.pool, 'tenant-stranger', ['send', 'read']),
    });
    cleanups.add(() => stranger.close());
    expect(
      outcomes(
        await stranger.inbox.markInbox({ userId: user, ids: [id], action: InboxChange.UNREAD }),
      ),
    ).toEqual(['NOT_FOUND']);
    expect(Number((await stranger.inbox.getUnreadCount({ userId: user })).unreadCount)).toBe(0);
  });
});

describe('live changes', () => {
  const steps = [
    InboxChange.SEEN,
    InboxChange.READ,
    InboxChange.UNREAD,
    InboxChange.ARCHIVED,
    InboxChange.UNARCHIVED,
  ];
  /** [version, change] of each state, and whether it shows seen, read, archived. */
  const summary = (states: readonly WatchNotificationsResponse[]) =>
    states.map((w) => [
      Number(w.event?.version),
      InboxChange[w.event?.inboxChange ?? 0],
      w.notification?.status === NotificationStatus.DELIVERED,
      w.notification?.seenAt !== undefined,
      w.notification?.readAt !== undefined,
      w.notification?.archivedAt !== undefined,
    ]);
  const EXPECTED = [
    [3, 'SEEN', true, true, false, false],
    [4, 'READ', true, true, true, false],
    [5, 'UNREAD', true, true, false, false],
    [6, 'ARCHIVED', true, true, false, true],
    [7, 'UNARCHIVED', true, true, false, false],
    [8, 'READ', true, true, true, false],
  ];

  it('streams each change on WatchNotifications in order, with its inbox change and state', async () => {
    const user = newUser('watch');
    const [id] = (await inboxItems(user, 1)) as [string];
    const asOwner = asUser(user);
    const feed = collect((signal) =>
      asOwner.watchNotifications(
        { target: { case: 'userId', value: user }, initialCount: 1 },
        { signal },
      ),
    );
    // The current state comes once the watch is live: no later change can be missed.
    await expect.poll(() => feed.length, WAIT).toBe(1);
    for (const action of steps) await asOwner.inbox.markInbox({ ids: [id], action });
    expect(Number((await asOwner.inbox.markAllRead({})).marked)).toBe(1);
    await expect.poll(() => feed.length, WAIT).toBe(1 + EXPECTED.length);
    expect(summary(feed.slice(1))).toEqual(EXPECTED);

    // Resuming from DELIVERED (version 2) replays the same changes from the history, in the same
    // states.
    const resumed = collect((signal) =>
      asOwner.watchNotifications(
        { target: { case: 'notificationId', value: id }, afterVersion: 2n },
        { signal },
      ),
    );
    await expect.poll(() => resumed.length, WAIT).toBe(EXPECTED.length);
    expect(summary(resumed)).toEqual(EXPECTED);
  });

  it('fills in a change whose live event was lost, from the history', async () => {
    const user = newUser('gap');
    const [id] = (await inboxItems(user, 1)) as [string];
    const feed = collect((signal) =>
      service.watchNotifications(
        { target: { case: 'userId', value: user }, initialCount: 1 },
        { signal },
      ),
    );
    await expect.poll(() => feed.length, WAIT).toBe(1);
    const nc = await connectNats({ servers: t.config.nats.url, name: 'inbox-test' });
    cleanups.add(() => nc.close());
    const store = createInboxStore(t.db.pool);
    const inbox = createInbox({ store, events: createStatusBus(nc, t.config.nats) });
    // SEEN is stored but never published; READ is published.
    expect(await store.mark(TENANT, user, [id], 'SEEN')).toHaveLength(1);
    await inbox.mark(TENANT, { userId: user, ids: [id], change: 'READ' });
    await expect.poll(() => feed.length, WAIT).toBe(3);
    expect(summary(feed.slice(1))).toEqual(EXPECTED.slice(0, 2));
  });
});

describe('unread count', () => {
  it('stays exact under 200 concurrent mixed marks from several clients', async () => {
    const user = newUser('concurrent');
    const ids = await inboxItems(user, 12);
    const clients = [
      service,
      asUser(user),
      createHeraldClient({
        baseUrl: t.httpUrl,
        apiKey: issueUserToken({ master: MASTER, tenantId: TENANT, userId: user }),
        protocol: 'connect',
      }),
    ];
    cleanups.add(() => clients[2]?.close());
    const actions = [
      InboxChange.SEEN,
      InboxChange.READ,
      InboxChange.UNREAD,
      InboxChange.ARCHIVED,
      InboxChange.UNARCHIVED,
    ];
    // A fixed pseudo-random sequence, so a failure can be replayed.
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    let changedReported = 0;
    const calls = Array.from({ length: 200 }, async (_, i) => {
      const client = clients[i % clients.length] as HeraldClient;
      const userId = client === service ? user : '';
      if (i % 50 === 49) {
        const res = await client.inbox.markAllRead({ userId });
        changedReported += Number(res.marked);
        return;
      }
      const picked = new Set(
        Array.from({ length: 1 + random(3) }, () => ids[random(ids.length)] as string),
      );
      const res = await client.inbox.markInbox({
        userId,
        ids: [...picked],
        action: actions[random(actions.length)] as InboxChange,
      });
      changedReported += res.results.filter((r) => r.outcome === MarkOutcome.CHANGED).length;
    });
    await Promise.all(calls);

    // The truth, from the final rows.
    const rows = (
      await service.inbox.listInbox({ userId: user, filter: InboxFilter.ALL, pageSize: 500 })
    ).notifications.concat(
      (await service.inbox.listInbox({ userId: user, filter: InboxFilter.ARCHIVED, pageSize: 500 }))
        .notifications,
    );
    expect(rows.map((n) => n.id).sort()).toEqual([...ids].sort());
    const truth = rows.filter((n) => n.readAt === undefined && n.archivedAt === undefined).length;
    expect(Number((await service.inbox.getUnreadCount({ userId: user })).unreadCount)).toBe(truth);
    expect(
      (await service.inbox.listInbox({ userId: user, filter: InboxFilter.UNREAD, pageSize: 500 }))
        .notifications,
    ).toHaveLength(truth);

    // Every reported change is exactly one history event, and each item's events replay to its
    // final state: read and unread alternate, as do archived and unarchived; seen at most once.
    const { rows: events } = await t.db.pool.query<{ id: string; version: number; change: string }>(
      `select notification_id as id, version, inbox_change as change from notification_event
       where notification_id = any($1) and inbox_change is not null order by notification_id, version`,
      [ids],
    );
    expect(events).toHaveLength(changedReported);
    for (const n of rows) {
      const mine = events.filter((e) => e.id === n.id);
      // Changes start after DELIVERED, version 2.
      expect(mine.map((e) => e.version)).toEqual(mine.map((_, i) => i + 3));
      expect(Number(n.version)).toBe(2 + mine.length);
      const reads = mine
        .filter((e) => e.change === 'READ' || e.change === 'UNREAD')
        .map((e) => e.change);
      expect(reads).toEqual(reads.map((_, i) => (i % 2 === 0 ? 'READ' : 'UNREAD')));
      expect(n.readAt !== undefined).toBe(reads.at(-1) === 'READ');
      const archives = mine
        .filter((e) => e.change === 'ARCHIVED' || e.change === 'UNARCHIVED')
        .map((e) => e.change);
      expect(archives).toEqual(archives.map((_, i) => (i % 2 === 0 ? 'ARCHIVED' : 'UNARCHIVED')));
      expect(n.archivedAt !== undefined).toBe(archives.at(-1) === 'ARCHIVED');
      expect(mine.filter((e) => e.change === 'SEEN').length).toBeLessThanOrEqual(1);
      expect(n.seenAt !== undefined).toBe(
        mine.some((e) => e.change === 'SEEN' || e.change === 'READ'),
      );
    }
  });

  it('is read from the unread partial index', async () => {
    const user = newUser('plan');
    const [a, b] = (await inboxItems(user, 4)) as [string, string];
    await mark(user, [a], InboxChange.READ);
    await mark(user, [b], InboxChange.ARCHIVED);
    // Fresh statistics and visibility map, as autovacuum keeps them in production.
    await t.db.pool.query('vacuum analyze notification');
    const client = await t.db.pool.connect();
    try {
      await client.query('begin');
      // Plans as the store's prepared statement gets them after a few runs: generic, for any
      // tenant and user. Sequential scans are off so a tiny test table cannot hide a missing or
      // unusable index behind a cheaper scan.
      await client.query('set local plan_cache_mode = force_generic_plan');
      await client.query('set local enable_seqscan = off');
      await client.query(`prepare unread_count_plan as ${UNREAD_COUNT_SQL}`);
      const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(
        `explain (format json) execute unread_count_plan('${TENANT}', 'someone')`,
      );
      const plan = JSON.stringify(rows[0]?.['QUERY PLAN']);
      expect(plan).toContain('"Index Name":"notification_inbox_unread_idx"');
      expect(plan).not.toContain('Filter');
    } finally {
      await client.query('rollback');
      await client.query('deallocate all');
      client.release();
    }
  });
});
