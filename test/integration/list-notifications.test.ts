/**
 * ListNotifications against a real api (PostgreSQL, NATS). Only the api role runs, so nothing is
 * delivered and every status stays what the test made it.
 */
import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import {
  Channel,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type ListNotificationsRequestSchema,
} from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

type ListRequest = MessageInitShape<typeof ListNotificationsRequestSchema>;

let t: TestHerald;
let client: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald({ roles: ['api'] });
  client = createHeraldClient({ baseUrl: t.h2cUrl });
});

afterAll(async () => {
  client?.close();
  await t?.stop();
});

interface Sent {
  id: string;
  createdAt: Timestamp;
}

/** Sends one in_app notification (or a scheduled email) and returns its id and creation time. */
async function send(
  userId: string,
  options: { email?: boolean; sendAt?: Date } = {},
): Promise<Sent> {
  const res = await client.send(
    options.email
      ? {
          userId,
          channel: Channel.EMAIL,
          to: 'reader@example.com',
          content: { subject: 's', body: 'b' },
          sendAt: options.sendAt ? timestampFromDate(options.sendAt) : undefined,
        }
      : {
          userId,
          channel: Channel.IN_APP,
          content: { title: 't' },
          sendAt: options.sendAt ? timestampFromDate(options.sendAt) : undefined,
        },
  );
  if (res.createdAt === undefined) throw new Error('Send returned no created_at');
  return { id: res.id, createdAt: res.createdAt };
}

/** Sends `n` notifications to `userId`, one after the other, oldest first. */
async function sendMany(userId: string, n: number): Promise<Sent[]> {
  const out: Sent[] = [];
  for (let i = 0; i < n; i++) out.push(await send(userId));
  return out;
}

async function ids(req: ListRequest): Promise<string[]> {
  const res = await client.listNotifications(req);
  return res.notifications.map((n) => n.id);
}

/** Every page of `req`, in order; `between` runs after each page but the last. */
async function allPages(req: ListRequest, between: () => Promise<void> = async () => {}) {
  const pages: string[][] = [];
  let pageToken = '';
  for (;;) {
    const res = await client.listNotifications({ ...req, pageToken });
    pages.push(res.notifications.map((n) => n.id));
    if (res.nextPageToken === '') return pages;
    expect(pages.length).toBeLessThan(100);
    pageToken = res.nextPageToken;
    await between();
  }
}

async function invalidArgument(req: ListRequest): Promise<{ code: Code; fields: string[] }> {
  const err = await rejection(client.listNotifications(req));
  return { code: err.code, fields: violatedFields(err) };
}

const newestFirst = (sent: readonly Sent[]) => sent.map((s) => s.id).reverse();

describe('ListNotifications', () => {
  describe('one user among others', () => {
    const user = `u-${randomUUID()}`;
    const other = `u-${randomUUID()}`;
    let mine: Sent[];
    let theirs: Sent[];

    beforeAll(async () => {
      mine = [];
      theirs = [];
      // Interleaved, so the other user's rows sit between this user's in time.
      for (let i = 0; i < 25; i++) {
        mine.push(await send(user));
        if (i % 3 === 0) theirs.push(await send(other));
      }
    });

    it('returns the latest 10, newest first, when page_size is 10', async () => {
      const res = await client.listNotifications({ userId: user, pageSize: 10 });

      expect(res.notifications.map((n) => n.id)).toEqual(newestFirst(mine).slice(0, 10));
      expect(res.notifications.every((n) => n.userId === user)).toBe(true);
      expect(res.nextPageToken).not.toBe('');
    });

    it('orders the page by created_at, then id, both descending', async () => {
      const res = await client.listNotifications({ userId: user, pageSize: 25 });

      const keys = res.notifications.map(
        (n) => [timestampDate(n.createdAt!).getTime(), n.id] as const,
      );
      for (let i = 1; i < keys.length; i++) {
        const [prevAt, prevId] = keys[i - 1]!;
        const [at, id] = keys[i]!;
        expect(at < prevAt || (at === prevAt && id < prevId)).toBe(true);
      }
    });

    it('returns at most 50, the default, when page_size is 0', async () => {
      const res = await client.listNotifications({ userId: other });

      expect(res.notifications.map((n) => n.id)).toEqual(newestFirst(theirs));
      expect(res.nextPageToken).toBe('');
    });

    it('returns every row exactly once, newest first, when paging by 7', async () => {
      const pages = await allPages({ userId: user, pageSize: 7 });

      expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 4]);
      expect(pages.flat()).toEqual(newestFirst(mine));
    });

    it('ends without a next page token when the rows fill the last page exactly', async () => {
      const pages = await allPages({ userId: user, pageSize: 5 });

      expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 5]);
      expect(pages.flat()).toEqual(newestFirst(mine));
    });

    it('lists every user, newest first, when no user_id is given', async () => {
      const everyone = new Set([...mine, ...theirs].map((s) => s.id));

      const listed = (await allPages({ pageSize: 500 })).flat().filter((id) => everyone.has(id));

      expect(listed).toEqual(
        [...mine, ...theirs].sort((a, b) => (a.id < b.id ? 1 : -1)).map((s) => s.id),
      );
    });
  });

  it('neither repeats nor skips the original rows when new ones arrive between pages', async () => {
    const user = `u-${randomUUID()}`;
    const original = await sendMany(user, 20);
    const arrived: Sent[] = [];

    const pages = await allPages({ userId: user, pageSize: 7 }, async () => {
      arrived.push(...(await sendMany(user, 3)));
    });

    const listed = pages.flat();
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed).toEqual(newestFirst(original));
    expect(arrived).toHaveLength(6);
    // The new rows are there for the next listing from the top.
    expect(await ids({ userId: user, pageSize: 6 })).toEqual(newestFirst(arrived));
  });

  describe('filters', () => {
    const user = `u-${randomUUID()}`;
    let pending: Sent[];
    let scheduledEmail: Sent[];
    let cancelled: Sent;
    let later: Date;

    beforeAll(async () => {
      later = new Date(Date.now() + 3_600_000);
      pending = await sendMany(user, 3);
      scheduledEmail = [
        await send(user, { email: true, sendAt: later }),
        await send(user, { email: true, sendAt: later }),
      ];
      cancelled = await send(user, { sendAt: later });
      await client.cancelNotification({ id: cancelled.id });
    });

    it('returns only the given status when statuses has one entry', async () => {
      expect(await ids({ userId: user, statuses: [NotificationStatus.SCHEDULED] })).toEqual(
        newestFirst(scheduledEmail),
      );
      expect(await ids({ userId: user, statuses: [NotificationStatus.PENDING] })).toEqual(
        newestFirst(pending),
      );
      expect(await ids({ userId: user, statuses: [NotificationStatus.DELIVERED] })).toEqual([]);
    });

    it('returns any of the given statuses when statuses has several entries', async () => {
      expect(
        await ids({
          userId: user,
          statuses: [NotificationStatus.PENDING, NotificationStatus.CANCELLED],
        }),
      ).toEqual([cancelled.id, ...newestFirst(pending)]);
    });

    it('returns only the given channels when channels is set', async () => {
      expect(await ids({ userId: user, channels: [Channel.EMAIL] })).toEqual(
        newestFirst(scheduledEmail),
      );
      expect(await ids({ userId: user, channels: [Channel.IN_APP] })).toEqual([
        cancelled.id,
        ...newestFirst(pending),
      ]);
      expect(await ids({ userId: user, channels: [Channel.EMAIL, Channel.IN_APP] })).toHaveLength(
        6,
      );
      expect(await ids({ userId: user, channels: [Channel.SMS] })).toEqual([]);
    });

    it('returns rows matching both when statuses and channels are set', async () => {
      expect(
        await ids({
          userId: user,
          channels: [Channel.IN_APP],
          statuses: [NotificationStatus.SCHEDULED],
        }),
      ).toEqual([]);
      expect(
        await ids({
          userId: user,
          channels: [Channel.IN_APP],
          statuses: [NotificationStatus.CANCELLED],
        }),
      ).toEqual([cancelled.id]);
    });

    it('returns the current status of each row when filtering', async () => {
      const res = await client.listNotifications({
        userId: user,
        statuses: [NotificationStatus.CANCELLED],
      });

      expect(res.notifications.map((n) => [n.status, n.version])).toEqual([
        [NotificationStatus.CANCELLED, 2n],
      ]);
    });

    it('pages through a filtered listing with the same filters', async () => {
      const pages = await allPages({ userId: user, channels: [Channel.IN_APP], pageSize: 2 });

      expect(pages).toEqual([
        [cancelled.id, pending[2]!.id],
        [pending[1]!.id, pending[0]!.id],
      ]);
    });
  });

  describe('created_after and created_before', () => {
    const user = `u-${randomUUID()}`;
    let sent: Sent[];

    beforeAll(async () => {
      sent = await sendMany(user, 12);
    });

    const at = (s: Sent) => timestampDate(s.createdAt).getTime();
    const expected = (after: number | null, before: number | null) =>
      newestFirst(
        sent.filter(
          (s) => (after === null || at(s) >= after) && (before === null || at(s) < before),
        ),
      );

    it('includes rows created at or after created_after', async () => {
      const after = sent[5]!.createdAt;

      const listed = await ids({ userId: user, createdAfter: after });

      expect(listed).toEqual(expected(at(sent[5]!), null));
      expect(listed).toContain(sent[5]!.id);
      expect(listed).not.toContain(sent[0]!.id);
    });

    it('excludes rows created at or after created_before', async () => {
      const before = sent[5]!.createdAt;

      const listed = await ids({ userId: user, createdBefore: before });

      expect(listed).toEqual(expected(null, at(sent[5]!)));
      expect(listed).not.toContain(sent[5]!.id);
      expect(listed).toContain(sent[0]!.id);
    });

    it('returns the window when both are set', async () => {
      const after = sent[2]!.createdAt;
      const before = sent[9]!.createdAt;

      const listed = await ids({ userId: user, createdAfter: after, createdBefore: before });

      expect(listed).toEqual(expected(at(sent[2]!), at(sent[9]!)));
      expect(listed.length).toBeGreaterThan(0);
    });

    it('returns nothing when the window is before every row', async () => {
      expect(
        await ids({
          userId: user,
          createdAfter: timestampFromDate(new Date(at(sent[0]!) - 60_000)),
          createdBefore: timestampFromDate(new Date(at(sent[0]!))),
        }),
      ).toEqual(expected(at(sent[0]!) - 60_000, at(sent[0]!)));
    });
  });

  describe('invalid requests', () => {
    it('fails with INVALID_ARGUMENT naming page_token when the token is not one it returned', async () => {
      for (const pageToken of ['garbage', 'W10', Buffer.from('["x","y"]').toString('base64url')]) {
        expect(await invalidArgument({ pageToken })).toEqual({
          code: Code.InvalidArgument,
          fields: ['page_token'],
        });
      }
    });

    it('fails with INVALID_ARGUMENT naming page_size when it is above 500', async () => {
      expect(await invalidArgument({ pageSize: 501 })).toEqual({
        code: Code.InvalidArgument,
        fields: ['page_size'],
      });
    });

    it('fails with INVALID_ARGUMENT naming page_size when it is negative', async () => {
      expect(await invalidArgument({ pageSize: -1 })).toEqual({
        code: Code.InvalidArgument,
        fields: ['page_size'],
      });
    });

    it('accepts exactly 500 as page_size', async () => {
      await expect(client.listNotifications({ pageSize: 500 })).resolves.toMatchObject({});
    });

    it('fails with INVALID_ARGUMENT naming created_before when it is not after created_after', async () => {
      const now = timestampFromDate(new Date());

      expect(await invalidArgument({ createdAfter: now, createdBefore: now })).toEqual({
        code: Code.InvalidArgument,
        fields: ['created_before'],
      });
    });

    it('fails with INVALID_ARGUMENT naming statuses and channels when they hold undefined values', async () => {
      expect(
        await invalidArgument({
          statuses: [NotificationStatus.UNSPECIFIED],
          channels: [99 as Channel],
        }),
      ).toEqual({ code: Code.InvalidArgument, fields: ['statuses', 'channels'] });
    });

    it('names every bad field at once, undefined enum values and the checks of the rest', async () => {
      expect(
        await invalidArgument({
          statuses: [NotificationStatus.UNSPECIFIED],
          pageSize: -1,
          userId: 'u'.repeat(129),
          pageToken: 'garbage',
        }),
      ).toEqual({
        code: Code.InvalidArgument,
        fields: ['statuses', 'page_size', 'user_id', 'page_token'],
      });
    });

    it('fails with INVALID_ARGUMENT naming user_id when it is longer than 128 characters', async () => {
      expect(await invalidArgument({ userId: 'u'.repeat(129) })).toEqual({
        code: Code.InvalidArgument,
        fields: ['user_id'],
      });
    });
  });
});
