/**
 * What a Send reads: the stored recipient only when the channel needs an address from it. The
 * stores are the real PostgreSQL ones; the recipient store is wrapped to count its reads.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifications, type Notifications } from '../../src/domain/notifications.js';
import type { RecipientStore } from '../../src/domain/recipients.js';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { createRecipientStore } from '../../src/infra/postgres/recipient-store.js';
import { sendInput } from '../support/fixtures.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

let db: TestDatabase;
let recipients: RecipientStore;
let notifications: Notifications;
const reads: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  recipients = createRecipientStore(db.pool);
  notifications = createNotifications({
    store: createNotificationStore(db.pool),
    // Publishing is not under test: a failed publish leaves the row to the outbox sweep.
    queue: { publish: () => Promise.reject(new Error('no queue in this test')) },
    events: {
      publish() {},
      subscribe() {
        throw new Error('no watch in this test');
      },
    },
    logger: silent,
    rateLimiter: null,
    recipients: {
      ...recipients,
      get(tenantId, userId) {
        reads.push(userId);
        return recipients.get(tenantId, userId);
      },
    },
    preferences: null,
    hash: (s) => s,
  });
});

afterAll(async () => {
  await notifications.drain();
  await db.drop();
});

const send = (userId: string, channel: string) =>
  sendInput({
    userId,
    channel,
    content: { subject: 'Hello', title: 'Hello', body: 'Hello there' },
  });

/** A recipient with an email address, and nothing else. */
async function recipientWithEmail(): Promise<string> {
  const userId = `u-${randomUUID()}`;
  await recipients.upsert('t1', {
    userId,
    email: 'someone@example.com',
    phone: null,
    timeZone: null,
    locale: null,
    data: {},
  });
  return userId;
}

describe('Send reads the recipient only for an address', () => {
  it.each(['in_app', 'webhook'])('%s: no recipient read, no address stored', async (channel) => {
    const user = await recipientWithEmail();
    const { notification } = await notifications.send('t1', send(user, channel));
    expect(notification.status).toBe('PENDING');
    expect(notification.to).toBeNull();
    expect(reads).not.toContain(user);
  });

  it('email without `to`: the recipient is read once and its address used', async () => {
    const user = await recipientWithEmail();
    const { notification } = await notifications.send('t1', send(user, 'email'));
    expect(notification.to).toBe('someone@example.com');
    expect(reads.filter((u) => u === user)).toHaveLength(1);
  });
});
