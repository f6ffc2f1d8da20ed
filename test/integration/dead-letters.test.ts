/**
 * DeadLetterService against a real Herald (api, worker and scheduler; PostgreSQL, NATS). Dead
 * letters are made through the store, as a worker makes them (claim, then complete as FAILED), so
 * a replayed one is really delivered, by the log provider. Every test selects its own dead letters
 * by a unique error text; rows of another tenant carry the same texts and must never be touched.
 */
import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, createClient, type Client } from '@connectrpc/connect';
import { Http2SessionManager, createGrpcTransport } from '@connectrpc/connect-node';
import { Channel, NotificationStatus, createHeraldClient, type HeraldClient } from '@herald/client';
import {
  DeadLetterService,
  type DeadLetterFilterSchema,
} from '@herald/client/gen/herald/v1/dead_letter_pb';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '../../src/domain/notification.js';
import type { DeadLetterSink, NotificationStore } from '../../src/domain/ports.js';
import { createDeadLetterSink } from '../../src/infra/nats/dead-letters.js';
import { deadLetterStreamName, deadLetterSubject } from '../../src/infra/nats/layout.js';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { rejection, violatedFields } from '../support/connect.js';
import { draftNotification } from '../support/fixtures.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

type Filter = MessageInitShape<typeof DeadLetterFilterSchema>;
type DomainChannel = Notification['channel'];

const OTHER_TENANT = 'other-tenant';

let t: TestHerald;
let deadLetters: Client<typeof DeadLetterService>;
let sessions: Http2SessionManager;
let herald: HeraldClient;
let store: NotificationStore;
let nc: NatsConnection;
let jsm: JetStreamManager;
let sink: DeadLetterSink;

beforeAll(async () => {
  t = await startTestHerald({ roles: ['api', 'worker', 'scheduler'] });
  sessions = new Http2SessionManager(t.h2cUrl);
  deadLetters = createClient(
    DeadLetterService,
    createGrpcTransport({ baseUrl: t.h2cUrl, sessionManager: sessions }),
  );
  herald = createHeraldClient({ baseUrl: t.h2cUrl });
  store = createNotificationStore(t.db.pool);
  nc = await connect({ servers: t.config.nats.url });
  jsm = await jetstreamManager(nc);
  sink = createDeadLetterSink(jetstream(nc), jsm, t.config.nats, pino({ level: 'warn' }));
});

afterAll(async () => {
  sessions?.abort();
  herald?.close();
  await nc?.close();
  await t?.stop();
});

const ADDRESS: Record<DomainChannel, string | null> = {
  email: 'a@example.com',
  sms: '+15550001111',
  push: 'device-token',
  webhook: 'https://example.com/hook',
  in_app: null,
};

/** A unique error text, so a test's filter selects only its own dead letters. */
const marker = (name: string) => `${name} ${randomUUID()}`;

/**
 * A dead letter made the way a worker makes one: inserted, claimed, and completed as FAILED with
 * `error`. Of the api's tenant unless `tenantId` says otherwise.
 */
async function deadLetter(
  error: string,
  options: { channel?: DomainChannel; tenantId?: string } = {},
): Promise<Notification> {
  const channel = options.channel ?? 'email';
  const n = draftNotification({
    tenantId: options.tenantId ?? t.config.tenant,
    userId: 'u-dead-letters',
    channel,
    to: ADDRESS[channel],
  });
  expect(await store.insert(n, null)).toMatchObject({ created: true });
  const claim = await store.claim(n.id, 1, 30_000);
  if (!claim.claimed) throw new Error(`could not claim ${n.id}`);
  const failed = await store.complete(n.id, claim.notification.attempt, {
    status: 'FAILED',
    provider: 'log',
    providerMessageId: null,
    error,
    nextAttemptAt: null,
  });
  if (failed === null || failed.deadLetteredAt === null)
    throw new Error(`${n.id} did not become a dead letter`);
  return failed;
}

/** `count` dead letters with the same error, made concurrently (so some share a timestamp). */
function manyDeadLetters(count: number, error: string, channel?: DomainChannel) {
  return Promise.all(Array.from({ length: count }, () => deadLetter(error, { channel })));
}

/** Newest dead letter first, as the api lists them: dead_lettered_at, then id, descending. */
function newestFirst(rows: readonly Notification[]): string[] {
  return [...rows]
    .sort((a, b) => {
      const d = b.deadLetteredAt!.getTime() - a.deadLetteredAt!.getTime();
      return d !== 0 ? d : a.id < b.id ? 1 : -1;
    })
    .map((n) => n.id);
}

/** Every page of a listing, in order. */
async function pages(filter: Filter, pageSize = 0): Promise<string[][]> {
  const out: string[][] = [];
  let pageToken = '';
  for (;;) {
    const res = await deadLetters.listDeadLetters({ filter, pageSize, pageToken });
    out.push(res.deadLetters.map((n) => n.id));
    if (res.nextPageToken === '') return out;
    expect(out.length).toBeLessThan(100);
    pageToken = res.nextPageToken;
  }
}

const listed = async (filter: Filter) => (await pages(filter, 500)).flat();

async function statusOf(id: string): Promise<NotificationStatus | undefined> {
  return (await herald.getNotification({ id })).notification?.status;
}

async function delivered(id: string): Promise<void> {
  await expect
    .poll(() => statusOf(id), { timeout: 15_000, interval: 50 })
    .toBe(NotificationStatus.DELIVERED);
}

const deliveriesOf = (id: string) => t.deliveries().filter((d) => d === id).length;

/** The other tenant's rows with `error` that are still dead letters, by id. */
async function othersStillDead(error: string): Promise<string[]> {
  const rows = await store.deadLetters(OTHER_TENANT, {
    ids: null,
    channels: [],
    errorContains: error,
    after: null,
    before: null,
    cursor: null,
    limit: 1000,
  });
  return rows.map((n) => n.id).sort();
}

async function invalid(call: Promise<unknown>): Promise<{ code: Code; fields: string[] }> {
  const err = await rejection(call);
  return { code: err.code, fields: violatedFields(err) };
}

const sorted = (ids: readonly string[]) => [...ids].sort();

describe('ListDeadLetters', () => {
  const error = marker('list');
  let email: Notification[];
  let sms: Notification[];
  let others: Notification[];

  beforeAll(async () => {
    email = await manyDeadLetters(5, `smtp said: ${error}`, 'email');
    sms = await manyDeadLetters(3, `twilio said: ${error}`, 'sms');
    others = await Promise.all([
      deadLetter(error, { tenantId: OTHER_TENANT }),
      deadLetter(error, { tenantId: OTHER_TENANT, channel: 'sms' }),
    ]);
  });

  it('returns the tenant’s dead letters, newest first, with their state, when filtered by error', async () => {
    const res = await deadLetters.listDeadLetters({ filter: { errorContains: error } });

    expect(res.deadLetters.map((n) => n.id)).toEqual(newestFirst([...email, ...sms]));
    expect(res.nextPageToken).toBe('');
    const first = res.deadLetters.find((n) => n.id === email[0]!.id);
    expect(first).toMatchObject({
      status: NotificationStatus.FAILED,
      channel: Channel.EMAIL,
      lastError: `smtp said: ${error}`,
      attempt: 1,
      generation: 1n,
    });
    expect(timestampDate(first!.deadLetteredAt!)).toEqual(email[0]!.deadLetteredAt);
  });

  it('matches the error text ignoring case, anywhere in the last error', async () => {
    expect(sorted(await listed({ errorContains: error.toUpperCase() }))).toEqual(
      sorted([...email, ...sms].map((n) => n.id)),
    );
    expect(await listed({ errorContains: `TWILIO said: ${error}` })).toEqual(newestFirst(sms));
    expect(await listed({ errorContains: `${error} and more` })).toEqual([]);
  });

  it('returns only the given channels when channels is set', async () => {
    expect(await listed({ errorContains: error, channels: [Channel.SMS] })).toEqual(
      newestFirst(sms),
    );
    expect(await listed({ errorContains: error, channels: [Channel.EMAIL, Channel.SMS] })).toEqual(
      newestFirst([...email, ...sms]),
    );
    expect(await listed({ errorContains: error, channels: [Channel.PUSH] })).toEqual([]);
  });

  it('returns every dead letter exactly once, newest first, when paging by 3', async () => {
    const got = await pages({ errorContains: error }, 3);

    expect(got.map((p) => p.length)).toEqual([3, 3, 2]);
    expect(got.flat()).toEqual(newestFirst([...email, ...sms]));
  });

  it('ends without a next page token when the dead letters fill the last page exactly', async () => {
    const got = await pages({ errorContains: error }, 4);

    expect(got.map((p) => p.length)).toEqual([4, 4]);
    expect(got.flat()).toEqual(newestFirst([...email, ...sms]));
  });

  it('pages a filtered listing with the same filter', async () => {
    const got = await pages({ errorContains: error, channels: [Channel.EMAIL] }, 2);

    expect(got.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(got.flat()).toEqual(newestFirst(email));
  });

  it('never returns another tenant’s dead letters', async () => {
    const everything = (await pages({}, 500)).flat();

    expect(everything).toEqual(expect.arrayContaining([...email, ...sms].map((n) => n.id)));
    for (const n of others) expect(everything).not.toContain(n.id);
    expect(await othersStillDead(error)).toEqual(sorted(others.map((n) => n.id)));
  });

  describe('dead_lettered_after and dead_lettered_before', () => {
    const windowError = marker('window');
    let rows: Notification[];

    beforeAll(async () => {
      // One after the other, so they are dead-lettered at different times (mostly).
      rows = [];
      for (let i = 0; i < 6; i++) rows.push(await deadLetter(windowError));
    });

    const at = (n: Notification) => n.deadLetteredAt!.getTime();
    const expected = (after: number | null, before: number | null) =>
      newestFirst(
        rows.filter(
          (n) => (after === null || at(n) >= after) && (before === null || at(n) < before),
        ),
      );

    it('includes dead letters from dead_lettered_after on', async () => {
      const got = await listed({
        errorContains: windowError,
        deadLetteredAfter: timestampFromDate(rows[2]!.deadLetteredAt!),
      });

      expect(got).toEqual(expected(at(rows[2]!), null));
      expect(got).toContain(rows[2]!.id);
    });

    it('excludes dead letters from dead_lettered_before on', async () => {
      const got = await listed({
        errorContains: windowError,
        deadLetteredBefore: timestampFromDate(rows[3]!.deadLetteredAt!),
      });

      expect(got).toEqual(expected(null, at(rows[3]!)));
      expect(got).not.toContain(rows[3]!.id);
      expect(got).toContain(rows[0]!.id);
    });

    it('returns the window when both are set', async () => {
      const got = await listed({
        errorContains: windowError,
        deadLetteredAfter: timestampFromDate(rows[1]!.deadLetteredAt!),
        deadLetteredBefore: timestampFromDate(rows[4]!.deadLetteredAt!),
      });

      expect(got).toEqual(expected(at(rows[1]!), at(rows[4]!)));
      expect(got.length).toBeGreaterThan(0);
    });
  });

  it('pages dead letters that share a timestamp exactly once', async () => {
    // Completed concurrently, these are batched into one statement: one dead_lettered_at for all.
    const batchError = marker('batch');
    const rows = await manyDeadLetters(9, batchError);

    const got = await pages({ errorContains: batchError }, 2);

    expect(got.map((p) => p.length)).toEqual([2, 2, 2, 2, 1]);
    expect(got.flat()).toEqual(newestFirst(rows));
  });
});

describe('GetDeadLetter', () => {
  it('returns the dead letter with its history, the FAILED event last', async () => {
    const n = await deadLetter(marker('get'));

    const res = await deadLetters.getDeadLetter({ id: n.id });

    expect(res.notification).toMatchObject({
      id: n.id,
      status: NotificationStatus.FAILED,
      generation: 1n,
      lastError: n.lastError,
    });
    expect(res.events.map((e) => [e.status, e.generation, e.attempt])).toEqual([
      [NotificationStatus.PENDING, 1n, 0],
      [NotificationStatus.PROCESSING, 1n, 1],
      [NotificationStatus.FAILED, 1n, 1],
    ]);
    expect(res.events.at(-1)?.error).toBe(n.lastError);
  });

  it('fails with NOT_FOUND for a notification that is not a dead letter', async () => {
    const sent = await herald.send({
      userId: 'u-dead-letters',
      channel: Channel.IN_APP,
      content: { title: 't' },
    });

    expect((await rejection(deadLetters.getDeadLetter({ id: sent.id }))).code).toBe(Code.NotFound);
    expect((await rejection(deadLetters.getDeadLetter({ id: randomUUID() }))).code).toBe(
      Code.NotFound,
    );
  });

  it('fails with NOT_FOUND for another tenant’s dead letter', async () => {
    const theirs = await deadLetter(marker('get-other'), { tenantId: OTHER_TENANT });

    expect((await rejection(deadLetters.getDeadLetter({ id: theirs.id }))).code).toBe(
      Code.NotFound,
    );
  });
});

describe('ReplayDeadLetters', () => {
  it('delivers a dead letter once, under a new generation with a fresh budget, when replayed by id', async () => {
    const n = await deadLetter(marker('replay'), { channel: 'sms' });
    await sink.add(n, null);
    const copy = () =>
      jsm.streams.getMessage(deadLetterStreamName(t.config.nats), {
        last_by_subj: deadLetterSubject(t.config.nats, n.channel, n.id),
      });
    expect(await copy()).not.toBeNull();

    const res = await deadLetters.replayDeadLetters({ ids: [n.id] });

    expect(res).toMatchObject({ replayedIds: [n.id], replayedCount: 1, more: false });
    await delivered(n.id);
    expect(deliveriesOf(n.id)).toBe(1);
    expect(await copy()).toBeNull();
    const { notification, events } = await herald.getNotification({ id: n.id });
    expect(notification).toMatchObject({ generation: 2n, attempt: 2 });
    expect(notification?.deadLetteredAt).toBeUndefined();
    expect(events.map((e) => [e.status, e.generation])).toEqual([
      [NotificationStatus.PENDING, 1n],
      [NotificationStatus.PROCESSING, 1n],
      [NotificationStatus.FAILED, 1n],
      [NotificationStatus.PENDING, 2n],
      [NotificationStatus.PROCESSING, 2n],
      [NotificationStatus.DELIVERED, 2n],
    ]);
    expect((await rejection(deadLetters.getDeadLetter({ id: n.id }))).code).toBe(Code.NotFound);
  });

  it('replays nothing and delivers nothing more when replayed again', async () => {
    const n = await deadLetter(marker('replay-twice'));
    await deadLetters.replayDeadLetters({ ids: [n.id] });
    await delivered(n.id);

    const again = await deadLetters.replayDeadLetters({ ids: [n.id] });

    expect(again).toMatchObject({ replayedIds: [], replayedCount: 0, more: false });
    expect(await statusOf(n.id)).toBe(NotificationStatus.DELIVERED);
    expect(deliveriesOf(n.id)).toBe(1);
  });

  it('replays once and delivers once when two replays race', async () => {
    const n = await deadLetter(marker('replay-race'), { channel: 'webhook' });

    const results = await Promise.all([
      deadLetters.replayDeadLetters({ ids: [n.id] }),
      deadLetters.replayDeadLetters({ ids: [n.id] }),
      deadLetters.replayDeadLetters({ filter: { errorContains: n.lastError! } }),
    ]);

    expect(results.flatMap((r) => r.replayedIds)).toEqual([n.id]);
    await delivered(n.id);
    expect(deliveriesOf(n.id)).toBe(1);
    const { notification } = await herald.getNotification({ id: n.id });
    expect(notification?.generation).toBe(2n);
  });

  it('replays the dead letters among the ids and skips the rest', async () => {
    const error = marker('replay-mixed');
    const [a, b] = await manyDeadLetters(2, error);
    const theirs = await deadLetter(error, { tenantId: OTHER_TENANT });

    const res = await deadLetters.replayDeadLetters({
      ids: [a!.id, randomUUID(), theirs.id, b!.id, a!.id],
    });

    expect(sorted(res.replayedIds)).toEqual(sorted([a!.id, b!.id]));
    expect(res.replayedCount).toBe(2);
    await delivered(a!.id);
    await delivered(b!.id);
    expect(await othersStillDead(error)).toEqual([theirs.id]);
  });

  it('replays exactly the dead letters the filter selects', async () => {
    const error = marker('replay-filter');
    const sms = await manyDeadLetters(3, error, 'sms');
    const [email] = await manyDeadLetters(1, error, 'email');
    const theirs = await deadLetter(error, { tenantId: OTHER_TENANT, channel: 'sms' });

    const res = await deadLetters.replayDeadLetters({
      filter: { errorContains: error, channels: [Channel.SMS] },
    });

    expect(res.replayedIds).toEqual(newestFirst(sms));
    expect(res).toMatchObject({ replayedCount: 3, more: false });
    for (const n of sms) await delivered(n.id);
    for (const n of sms) expect(deliveriesOf(n.id)).toBe(1);
    expect(await listed({ errorContains: error })).toEqual([email!.id]);
    expect(deliveriesOf(email!.id)).toBe(0);
    expect(await othersStillDead(error)).toEqual([theirs.id]);
  });

  it('replays the dead letters of a time window', async () => {
    const error = marker('replay-window');
    const rows: Notification[] = [];
    for (let i = 0; i < 4; i++) rows.push(await deadLetter(error));
    const from = rows[1]!.deadLetteredAt!;
    const to = new Date(rows[2]!.deadLetteredAt!.getTime() + 1);
    const inWindow = (n: Notification) => n.deadLetteredAt! >= from && n.deadLetteredAt! < to;

    const res = await deadLetters.replayDeadLetters({
      filter: {
        errorContains: error,
        deadLetteredAfter: timestampFromDate(from),
        deadLetteredBefore: timestampFromDate(to),
      },
    });

    expect(res.replayedIds).toEqual(newestFirst(rows.filter(inWindow)));
    expect(res.replayedIds).toEqual(expect.arrayContaining([rows[1]!.id, rows[2]!.id]));
    for (const n of rows.filter(inWindow)) await delivered(n.id);
    expect(await listed({ errorContains: error })).toEqual(
      newestFirst(rows.filter((n) => !inWindow(n))),
    );
  });
});

describe('PurgeDeadLetters', () => {
  it('takes a dead letter off the list but leaves it FAILED, when purged by id', async () => {
    const error = marker('purge');
    const [n, kept] = await manyDeadLetters(2, error);
    await sink.add(n!, null);
    const copy = () =>
      jsm.streams.getMessage(deadLetterStreamName(t.config.nats), {
        last_by_subj: deadLetterSubject(t.config.nats, n!.channel, n!.id),
      });
    expect(await copy()).not.toBeNull();

    const res = await deadLetters.purgeDeadLetters({ ids: [n!.id] });

    expect(res).toMatchObject({ purgedIds: [n!.id], purgedCount: 1, more: false });
    expect(await listed({ errorContains: error })).toEqual([kept!.id]);
    expect(await copy()).toBeNull();
    const { notification } = await herald.getNotification({ id: n!.id });
    expect(notification).toMatchObject({ status: NotificationStatus.FAILED, lastError: error });
    expect(notification?.deadLetteredAt).toBeUndefined();
    expect((await rejection(deadLetters.getDeadLetter({ id: n!.id }))).code).toBe(Code.NotFound);
  });

  it('purges nothing, and replays nothing, when the dead letter was purged already', async () => {
    const n = await deadLetter(marker('purge-twice'));
    await deadLetters.purgeDeadLetters({ ids: [n.id] });

    expect(await deadLetters.purgeDeadLetters({ ids: [n.id] })).toMatchObject({
      purgedIds: [],
      purgedCount: 0,
    });
    expect(await deadLetters.replayDeadLetters({ ids: [n.id] })).toMatchObject({
      replayedIds: [],
      replayedCount: 0,
    });
    expect(await statusOf(n.id)).toBe(NotificationStatus.FAILED);
  });

  it('purges exactly the dead letters the filter selects', async () => {
    const error = marker('purge-filter');
    const push = await manyDeadLetters(4, error, 'push');
    const [email] = await manyDeadLetters(1, error, 'email');
    const theirs = await deadLetter(error, { tenantId: OTHER_TENANT, channel: 'push' });

    const res = await deadLetters.purgeDeadLetters({
      filter: { errorContains: error, channels: [Channel.PUSH] },
    });

    expect(res).toMatchObject({ purgedIds: newestFirst(push), purgedCount: 4, more: false });
    expect(await listed({ errorContains: error })).toEqual([email!.id]);
    expect(await othersStillDead(error)).toEqual([theirs.id]);
  });

  it('purges 10,000 per call and says there are more, when the filter selects more', async () => {
    const error = marker('purge-cap');
    const rows: Notification[] = [];
    // In waves, so each row is claimed long before the outbox sweep would publish it.
    for (let i = 0; i < 10_001; i += 500)
      rows.push(...(await manyDeadLetters(Math.min(500, 10_001 - i), error)));

    const first = await deadLetters.purgeDeadLetters({ filter: { errorContains: error } });

    expect(first).toMatchObject({ purgedCount: 10_000, more: true });
    expect(new Set(first.purgedIds).size).toBe(10_000);
    const left = await listed({ errorContains: error });
    expect(left).toHaveLength(1);
    expect(first.purgedIds).not.toContain(left[0]);
    // The oldest one is left: a filter works newest first.
    expect(left).toEqual(newestFirst(rows).slice(-1));

    const second = await deadLetters.purgeDeadLetters({ filter: { errorContains: error } });

    expect(second).toMatchObject({ purgedIds: left, purgedCount: 1, more: false });
  });
});

describe('an empty filter', () => {
  it('replays every dead letter of the tenant and none of another tenant', async () => {
    const error = marker('replay-all');
    const mine = await manyDeadLetters(3, error, 'email');
    const theirs = await deadLetter(error, { tenantId: OTHER_TENANT });

    const res = await deadLetters.replayDeadLetters({ filter: {} });

    expect(res.replayedIds).toEqual(expect.arrayContaining(mine.map((n) => n.id)));
    expect(res.replayedIds).not.toContain(theirs.id);
    expect(res.more).toBe(false);
    expect(await listed({})).toEqual([]);
    for (const n of mine) await delivered(n.id);
    expect(await othersStillDead(error)).toEqual([theirs.id]);
  });
});

describe('invalid requests', () => {
  const id = randomUUID();

  it('fails with INVALID_ARGUMENT naming ids when neither ids nor filter is set', async () => {
    expect(await invalid(deadLetters.replayDeadLetters({}))).toEqual({
      code: Code.InvalidArgument,
      fields: ['ids'],
    });
    expect(await invalid(deadLetters.purgeDeadLetters({ ids: [] }))).toEqual({
      code: Code.InvalidArgument,
      fields: ['ids'],
    });
  });

  it('fails with INVALID_ARGUMENT naming filter when both ids and filter are set', async () => {
    expect(await invalid(deadLetters.replayDeadLetters({ ids: [id], filter: {} }))).toEqual({
      code: Code.InvalidArgument,
      fields: ['filter'],
    });
    expect(await invalid(deadLetters.purgeDeadLetters({ ids: [id], filter: {} }))).toEqual({
      code: Code.InvalidArgument,
      fields: ['filter'],
    });
  });

  it('fails with INVALID_ARGUMENT naming each id that is not a UUID', async () => {
    expect(
      await invalid(deadLetters.replayDeadLetters({ ids: [id, id, id, 'not-a-uuid', '', id] })),
    ).toEqual({ code: Code.InvalidArgument, fields: ['ids[3]', 'ids[4]'] });
    expect(await invalid(deadLetters.purgeDeadLetters({ ids: ['x'] }))).toEqual({
      code: Code.InvalidArgument,
      fields: ['ids[0]'],
    });
  });

  it('fails with INVALID_ARGUMENT naming ids when there are more than 1,000', async () => {
    const many = Array.from({ length: 1_001 }, () => randomUUID());

    expect(await invalid(deadLetters.replayDeadLetters({ ids: many }))).toEqual({
      code: Code.InvalidArgument,
      fields: ['ids'],
    });
    expect(await invalid(deadLetters.purgeDeadLetters({ ids: many }))).toEqual({
      code: Code.InvalidArgument,
      fields: ['ids'],
    });
  });

  it('accepts exactly 1,000 ids', async () => {
    const many = Array.from({ length: 1_000 }, () => randomUUID());

    expect(await deadLetters.replayDeadLetters({ ids: many })).toMatchObject({
      replayedCount: 0,
    });
  });

  it('fails with INVALID_ARGUMENT naming page_size when it is out of range', async () => {
    for (const pageSize of [-1, 501]) {
      expect(await invalid(deadLetters.listDeadLetters({ pageSize }))).toEqual({
        code: Code.InvalidArgument,
        fields: ['page_size'],
      });
    }
    await expect(deadLetters.listDeadLetters({ pageSize: 500 })).resolves.toMatchObject({});
  });

  it('names every bad field at once: an undefined channel does not hide the other checks', async () => {
    expect(
      await invalid(
        deadLetters.listDeadLetters({ filter: { channels: [99 as Channel] }, pageSize: -1 }),
      ),
    ).toEqual({ code: Code.InvalidArgument, fields: ['filter.channels', 'page_size'] });
    expect(
      await invalid(
        deadLetters.replayDeadLetters({ ids: ['nope'], filter: { channels: [99 as Channel] } }),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      fields: ['filter.channels', 'filter', 'ids[0]'],
    });
  });

  it('fails with INVALID_ARGUMENT naming page_token when the token is not one it returned', async () => {
    const { nextPageToken } = await herald.listNotifications({ pageSize: 1 });
    expect(nextPageToken).not.toBe('');
    const garbage = ['garbage', 'W10', Buffer.from('["dl","x","y"]').toString('base64url')];

    for (const pageToken of [...garbage, nextPageToken]) {
      expect(await invalid(deadLetters.listDeadLetters({ pageToken }))).toEqual({
        code: Code.InvalidArgument,
        fields: ['page_token'],
      });
    }
  });

  it('fails with INVALID_ARGUMENT naming filter.error_contains when it is longer than 200 characters', async () => {
    const filter = { errorContains: 'e'.repeat(201) };

    for (const call of [
      () => deadLetters.listDeadLetters({ filter }),
      () => deadLetters.replayDeadLetters({ filter }),
      () => deadLetters.purgeDeadLetters({ filter }),
    ]) {
      expect(await invalid(call())).toEqual({
        code: Code.InvalidArgument,
        fields: ['filter.error_contains'],
      });
    }
    await expect(
      deadLetters.listDeadLetters({ filter: { errorContains: 'e'.repeat(200) } }),
    ).resolves.toMatchObject({ deadLetters: [] });
  });

  it('fails with INVALID_ARGUMENT naming filter.error_contains when it contains NUL', async () => {
    expect(
      await invalid(deadLetters.listDeadLetters({ filter: { errorContains: 'a\u0000b' } })),
    ).toEqual({ code: Code.InvalidArgument, fields: ['filter.error_contains'] });
  });

  it('fails with INVALID_ARGUMENT naming filter.dead_lettered_before when it is not after dead_lettered_after', async () => {
    const now = timestampFromDate(new Date());
    const filter = { deadLetteredAfter: now, deadLetteredBefore: now };

    for (const call of [
      () => deadLetters.listDeadLetters({ filter }),
      () => deadLetters.replayDeadLetters({ filter }),
      () => deadLetters.purgeDeadLetters({ filter }),
    ]) {
      expect(await invalid(call())).toEqual({
        code: Code.InvalidArgument,
        fields: ['filter.dead_lettered_before'],
      });
    }
  });

  it('fails with INVALID_ARGUMENT naming filter.channels when it holds undefined values', async () => {
    expect(
      await invalid(deadLetters.listDeadLetters({ filter: { channels: [Channel.UNSPECIFIED] } })),
    ).toEqual({ code: Code.InvalidArgument, fields: ['filter.channels'] });
    expect(
      await invalid(deadLetters.replayDeadLetters({ filter: { channels: [99 as Channel] } })),
    ).toEqual({ code: Code.InvalidArgument, fields: ['filter.channels'] });
  });

  it('fails with INVALID_ARGUMENT naming id when GetDeadLetter is given no UUID', async () => {
    for (const bad of ['', 'nope']) {
      expect(await invalid(deadLetters.getDeadLetter({ id: bad }))).toEqual({
        code: Code.InvalidArgument,
        fields: ['id'],
      });
    }
  });
});
