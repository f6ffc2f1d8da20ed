/**
 * Scheduling and quiet hours: a future send_at is SCHEDULED and released by the scheduler; one
 * cancelled before its time is never delivered; a Send due inside the recipient's quiet hours is
 * deferred to their end (critical priority is not), and its status_reason is cleared when it is
 * released; DeliverNow releases it at once; DeliverNow and CancelNotification are idempotent.
 * (Opt-outs made while a notification waits: preferences.test.ts.)
 */
import { randomUUID } from 'node:crypto';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import {
  Channel,
  NotificationStatus,
  Priority,
  createHeraldClient,
  type HeraldClient,
} from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let t: TestHerald;
let herald: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald();
  herald = createHeraldClient({ baseUrl: t.h2cUrl });
});

afterAll(async () => {
  herald?.close();
  await t?.stop();
});

const user = () => `s-${randomUUID()}`;
const email = (userId: string) => ({
  userId,
  channel: Channel.EMAIL,
  to: 'a@example.com',
  content: { subject: 's', body: 'b' },
});

async function status(id: string) {
  return (await herald.getNotification({ id })).notification?.status;
}

async function delivered(id: string) {
  await expect
    .poll(() => status(id), { timeout: 20_000, interval: 50 })
    .toBe(NotificationStatus.DELIVERED);
  await expect.poll(() => t.deliveries().includes(id), { timeout: 5_000 }).toBe(true);
}

const MINUTE = 60_000;
const hhmm = (m: number) => {
  const x = ((m % 1440) + 1440) % 1440;
  return `${String(Math.floor(x / 60)).padStart(2, '0')}:${String(x % 60).padStart(2, '0')}`;
};
/** The wall-clock minute after midnight of an instant in a zone. */
function localMinute(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hourCycle: 'h23',
    hour: '2-digit',
    minute: '2-digit',
  }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return get('hour') * 60 + get('minute');
}

/**
 * A quiet-hours window around now in `timeZone`: from an hour ago to two hours ahead, so a Send
 * made now is inside it whatever the time of day the test runs. Tests that check where it ends
 * use zones without DST (wall-clock minutes are real minutes there); DST is for the unit tests.
 */
function windowAroundNow(timeZone: string) {
  const m = localMinute(new Date(), timeZone);
  return { enabled: true, start: hhmm(m - 60), end: hhmm(m + 120), endMinute: (m + 120) % 1440 };
}

/** Where the window ends as seen from `createdAt`: that many whole minutes ahead, on the minute. */
function expectedRelease(createdAt: Date, endMinute: number, timeZone: string): Date {
  const ahead = (endMinute - localMinute(createdAt, timeZone) + 1440) % 1440;
  return new Date(Math.floor(createdAt.getTime() / MINUTE) * MINUTE + ahead * MINUTE);
}

describe('send_at', () => {
  it('is SCHEDULED, then released and DELIVERED by the scheduler once due', async () => {
    const sendAt = new Date(Date.now() + 1_500);
    const res = await herald.send({ ...email(user()), sendAt: timestampFromDate(sendAt) });
    expect(res.status).toBe(NotificationStatus.SCHEDULED);
    expect(t.deliveries()).not.toContain(res.id);
    await delivered(res.id);
    const got = await herald.getNotification({ id: res.id });
    expect(timestampDate(got.notification!.deliveredAt!).getTime()).toBeGreaterThanOrEqual(
      sendAt.getTime(),
    );
    expect(got.events.map((e) => e.status).slice(0, 2)).toEqual([
      NotificationStatus.SCHEDULED,
      NotificationStatus.PENDING,
    ]);
  });

  it('never delivers one cancelled before its time', async () => {
    const u = user();
    // Far enough ahead that the Cancel below lands well before it is due.
    const sendAt = Date.now() + 5_000;
    const cancelled = await herald.send({
      ...email(u),
      sendAt: timestampFromDate(new Date(sendAt)),
    });
    // Due later than the cancelled one: the scheduler releases rows in send_at order, so once this
    // one is delivered, the cancelled one's time has passed and the scheduler has swept past it.
    const later = await herald.send({
      ...email(u),
      sendAt: timestampFromDate(new Date(sendAt + 200)),
    });
    const first = await herald.cancelNotification({ id: cancelled.id });
    expect(first.notification?.status).toBe(NotificationStatus.CANCELLED);
    const again = await herald.cancelNotification({ id: cancelled.id });
    expect(again.notification).toMatchObject({
      status: NotificationStatus.CANCELLED,
      version: first.notification?.version,
    });

    await delivered(later.id);
    expect(Date.now()).toBeGreaterThan(sendAt);
    const got = await herald.getNotification({ id: cancelled.id });
    // Cancelled while it waited, never released.
    expect(got.events.map((e) => e.status)).toEqual([
      NotificationStatus.SCHEDULED,
      NotificationStatus.CANCELLED,
    ]);
    expect(t.deliveries()).not.toContain(cancelled.id);
  });
});

describe('quiet hours', () => {
  it('defers a Send due inside the recipient’s window to its end, in their time zone', async () => {
    const u = user();
    const zone = 'Asia/Tokyo';
    await herald.recipients.upsertRecipient({ recipient: { userId: u, timeZone: zone } });
    const w = windowAroundNow(zone);
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { quietHours: { enabled: true, start: w.start, end: w.end } },
    });
    const res = await herald.send(email(u));
    expect(res.status).toBe(NotificationStatus.SCHEDULED);
    const n = (await herald.getNotification({ id: res.id })).notification!;
    expect(n.statusReason).toBe(`quiet hours ${w.start}–${w.end} ${zone}`);
    expect(timestampDate(n.sendAt!)).toEqual(
      expectedRelease(timestampDate(res.createdAt!), w.endMinute, zone),
    );
  });

  it('uses the tenant’s window and default zone for a recipient without either', async () => {
    const zone = 'Asia/Kolkata';
    const w = windowAroundNow(zone);
    await herald.preferences.updateTenantPreferences({
      preferences: {
        quietHours: { enabled: true, start: w.start, end: w.end },
        defaultTimeZone: zone,
      },
    });
    try {
      const res = await herald.send(email(user()));
      expect(res.status).toBe(NotificationStatus.SCHEDULED);
      const n = (await herald.getNotification({ id: res.id })).notification!;
      expect(n.statusReason).toBe(`quiet hours ${w.start}–${w.end} ${zone}`);
      expect(timestampDate(n.sendAt!)).toEqual(
        expectedRelease(timestampDate(res.createdAt!), w.endMinute, zone),
      );

      // A user who turned quiet hours off, critical priority, and in-app are not held back.
      const optedOut = user();
      await herald.preferences.updatePreferences({
        userId: optedOut,
        preferences: { quietHours: { enabled: false } },
      });
      const notQuiet = await herald.send(email(optedOut));
      const critical = await herald.send({ ...email(user()), priority: Priority.CRITICAL });
      const inApp = await herald.send({
        userId: user(),
        channel: Channel.IN_APP,
        content: { title: 't' },
      });
      for (const r of [notQuiet, critical, inApp]) {
        expect(r.status).toBe(NotificationStatus.PENDING);
      }
      await delivered(notQuiet.id);
      await delivered(critical.id);
      // In-app goes to the inbox, not through the log provider.
      await expect
        .poll(() => status(inApp.id), { timeout: 20_000, interval: 50 })
        .toBe(NotificationStatus.DELIVERED);
    } finally {
      await herald.preferences.updateTenantPreferences({ preferences: {} });
    }
  });

  it('clears status_reason when it is released, keeping it in the SCHEDULED event', async () => {
    const u = user();
    const w = windowAroundNow('UTC');
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { quietHours: { enabled: true, start: w.start, end: w.end } },
    });
    const res = await herald.send(email(u));
    expect(res.status).toBe(NotificationStatus.SCHEDULED);
    const reason = `quiet hours ${w.start}–${w.end} UTC`;
    // The window ends hours from now: bring the deferral's end forward instead of waiting.
    await t.db.pool.query(`update notification set send_at = now() where id = $1`, [res.id]);
    await delivered(res.id);
    const got = await herald.getNotification({ id: res.id });
    expect(got.notification?.statusReason).toBe('');
    expect(got.events.map((e) => [e.status, e.error])).toEqual([
      [NotificationStatus.SCHEDULED, reason],
      [NotificationStatus.PENDING, ''],
      [NotificationStatus.PROCESSING, ''],
      [NotificationStatus.DELIVERED, ''],
    ]);
  });
});

describe('DeliverNow', () => {
  /** A Send held back by quiet hours until two hours from now. */
  async function deferred(): Promise<string> {
    const u = user();
    const w = windowAroundNow('UTC');
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { quietHours: { enabled: true, start: w.start, end: w.end } },
    });
    const res = await herald.send(email(u));
    expect(res.status).toBe(NotificationStatus.SCHEDULED);
    return res.id;
  }

  it('delivers a deferred notification at once, and a second call changes nothing', async () => {
    const id = await deferred();
    const res = await herald.deliverNow({ id });
    expect(res.notification?.status).toBe(NotificationStatus.PENDING);
    // No longer deferred: the reason stays only in the SCHEDULED event.
    expect(res.notification?.statusReason).toBe('');
    expect(timestampDate(res.notification!.sendAt!).getTime()).toBeLessThanOrEqual(Date.now());
    await delivered(id);

    const again = await herald.deliverNow({ id });
    expect(again.notification?.status).toBe(NotificationStatus.DELIVERED);
    const { events } = await herald.getNotification({ id });
    expect(events.map((e) => e.status)).toEqual([
      NotificationStatus.SCHEDULED,
      NotificationStatus.PENDING,
      NotificationStatus.PROCESSING,
      NotificationStatus.DELIVERED,
    ]);
    expect(t.deliveries().filter((d) => d === id)).toHaveLength(1);
  });

  it('releases a notification scheduled for later', async () => {
    const res = await herald.send({
      ...email(user()),
      sendAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
    });
    await herald.deliverNow({ id: res.id });
    await delivered(res.id);
  });

  it('refuses cancelled and suppressed notifications, and names unknown and bad ids', async () => {
    const cancelled = await deferred();
    await herald.cancelNotification({ id: cancelled });
    const err = await rejection(herald.deliverNow({ id: cancelled }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe(
      `notification ${cancelled} is CANCELLED; only a SCHEDULED notification can be delivered now`,
    );

    const u = user();
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { rules: [{ channel: Channel.EMAIL, enabled: false }] },
    });
    const suppressed = await herald.send(email(u));
    expect(suppressed.status).toBe(NotificationStatus.SUPPRESSED);
    expect((await rejection(herald.deliverNow({ id: suppressed.id }))).code).toBe(
      Code.FailedPrecondition,
    );

    expect(
      (await rejection(herald.deliverNow({ id: '01890000-0000-7000-8000-000000000000' }))).code,
    ).toBe(Code.NotFound);
    expect((await rejection(herald.deliverNow({ id: 'nope' }))).code).toBe(Code.InvalidArgument);
  });
});
