/** A notification as a provider receives it: stored, claimed by a worker, mid-attempt. */
import type { Notification } from '../../src/domain/notification.js';
import { draftNotification } from './fixtures.js';

/**
 * A PROCESSING email notification of tenant `t1`, user `u1`, on its first attempt (published,
 * leased); override any field — e.g. `channel`, `to` and `content` for another provider.
 */
export function storedNotification(overrides: Partial<Notification> = {}): Notification {
  const now = new Date();
  return draftNotification({
    status: 'PROCESSING',
    attempt: 1,
    version: 2,
    publishedAt: now,
    leaseUntil: new Date(now.getTime() + 30_000),
    ...overrides,
  });
}
