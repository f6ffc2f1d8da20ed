/**
 * The watch use case over the real store and status bus: live states are forwarded in order, and
 * a state whose live event never arrived is replayed from the stored history.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/domain/ids.js';
import type { Notification, Status } from '../../src/domain/notification.js';
import {
  createNotifications,
  eventOf,
  type Notifications,
  type NotificationsDeps,
} from '../../src/domain/notifications.js';
import type { NotificationStore, StatusEvents } from '../../src/domain/ports.js';
import type { StatusEvent } from '../../src/domain/status-event.js';
import { connectNats } from '../../src/infra/nats/connection.js';
import { createStatusBus } from '../../src/infra/nats/status-bus.js';
import { createRecipientStore } from '../../src/infra/postgres/recipient-store.js';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { draftNotification } from '../support/fixtures.js';
import { NATS_URL, randomLayout } from '../support/nats.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

let db: TestDatabase;
let nc: NatsConnection;
let store: NotificationStore;
let events: StatusEvents;
let notifications: Notifications;

beforeAll(async () => {
  db = await createTestDatabase();
  nc = await connectNats({ servers: NATS_URL, name: 'watch-test' });
  store = createNotificationStore(db.pool);
  events = createStatusBus(nc, randomLayout());
  notifications = createNotifications(deps());
});

function deps(): NotificationsDeps {
  return {
    store,
    // Never called: these tests store rows directly and publish their status events by hand.
    queue: { publish: () => Promise.reject(new Error('no queue in this test')) },
    events,
    logger: silent,
    rateLimiter: null,
    recipients: createRecipientStore(db.pool),
    preferences: null,
    hash: (s) => s,
  };
}

afterAll(async () => {
  await nc.close();
  await db.drop();
});

function draft(userId: string, createdAt: Date): Notification {
  return draftNotification({
    userId,
    createdAt,
    channel: 'in_app',
    content: { title: 'hello' },
    to: null,
  });
}

/** Runs `body` with a watch of `userId`'s notifications, and ends the watch afterwards. */
async function withUserWatch(
  target: { userId: string; statuses?: Status[] },
  body: (watch: AsyncGenerator<StatusEvent>) => Promise<void>,
): Promise<void> {
  const abort = new AbortController();
  const watch = notifications.watch('t1', { initialCount: 0, ...target }, abort.signal);
  try {
    await body(watch);
  } finally {
    abort.abort();
    await watch.return(undefined);
  }
}

/**
 * Claims `n` (version 2) and publishes only that state's event — the PENDING event is never
 * published, as if core NATS had lost it. Republishes until the watch yields (the watch cannot
 * tell the test when its subscription is live), then collects `count` states.
 */
async function collect(
  watch: AsyncGenerator<StatusEvent>,
  n: Notification,
  count: number,
): Promise<[string, number][]> {
  const claim = await store.claim(n.id, 1, 60_000);
  if (!claim.claimed) throw new Error('claim failed');
  const processing = eventOf(claim.notification, 'in_app', null);
  const first = watch.next();
  let done = false;
  void first.finally(() => (done = true));
  const deadline = Date.now() + 10_000;
  while (!done && Date.now() < deadline) {
    events.publish(processing);
    await Promise.race([first, new Promise((r) => setTimeout(r, 50))]);
  }
  const states: StatusEvent[] = [];
  const head = await first;
  if (!head.done) states.push(head.value);
  while (states.length < count) {
    const next = await watch.next();
    if (next.done) break;
    states.push(next.value);
  }
  return states.map((s) => [s.notification.status, s.notification.version]);
}

describe('Notifications.watch', () => {
  it('replays the missed PENDING state from history when a new notification’s first event is lost', async () => {
    const userId = `u-${uuidv7()}`;
    await withUserWatch({ userId }, async (watch) => {
      const n = draft(userId, new Date());
      await store.insert(n, null);
      expect(await collect(watch, n, 2)).toEqual([
        ['PENDING', 1],
        ['PROCESSING', 2],
      ]);
    });
  });

  it('replays only the requested statuses when filling a gap', async () => {
    const userId = `u-${uuidv7()}`;
    await withUserWatch({ userId, statuses: ['PROCESSING'] }, async (watch) => {
      const n = draft(userId, new Date());
      await store.insert(n, null);
      expect(await collect(watch, n, 1)).toEqual([['PROCESSING', 2]]);
    });
  });

  it('does not replay the history of a notification it has forgotten (past watchMemory)', async () => {
    const forgetful = createNotifications({ ...deps(), watchMemory: 2 });
    const userId = `u-${uuidv7()}`;
    const abort = new AbortController();
    const watch = forgetful.watch('t1', { userId, initialCount: 0 }, abort.signal);
    try {
      const a = draft(userId, new Date());
      await store.insert(a, null);
      // Seen at version 2 (its PENDING replayed from the history).
      expect(await collect(watch, a, 2)).toEqual([
        ['PENDING', 1],
        ['PROCESSING', 2],
      ]);
      // Two newer ones seen after it: the watch forgets `a`.
      for (const n of [draft(userId, new Date()), draft(userId, new Date())]) {
        const stored = await store.insert(n, null);
        events.publish(eventOf(stored.notification, null, null));
        const seen = await watch.next();
        expect(seen.done ? null : seen.value.notification.id).toBe(n.id);
      }

      // `a` changes again: only that change is due, not its whole history once more.
      const claimed = await store.get('t1', a.id);
      if (claimed === null) throw new Error('a is gone');
      events.publish(eventOf({ ...claimed, status: 'DELIVERED', version: 3 }, 'in_app', null));
      const next = await watch.next();

      expect(
        next.done ? null : [next.value.notification.status, next.value.notification.version],
      ).toEqual(['DELIVERED', 3]);
    } finally {
      abort.abort();
      await watch.return(undefined);
    }
  });

  it('starts from the live state when the notification is older than the watch', async () => {
    const userId = `u-${uuidv7()}`;
    await withUserWatch({ userId }, async (watch) => {
      const n = draft(userId, new Date(Date.now() - 3_600_000));
      await store.insert(n, null);
      expect(await collect(watch, n, 1)).toEqual([['PROCESSING', 2]]);
    });
  });
});
