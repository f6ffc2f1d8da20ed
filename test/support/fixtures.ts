/** Domain objects and requests for tests that call the domain or write to the store directly. */
import { uuidv7 } from '../../src/domain/ids.js';
import type { Notification } from '../../src/domain/notification.js';
import type { SendInput } from '../../src/domain/validation.js';

/** A new PENDING email notification of tenant `t1`, user `u1`, created now; override any field. */
export function draftNotification(overrides: Partial<Notification> = {}): Notification {
  const at = overrides.createdAt ?? new Date();
  return {
    id: uuidv7(),
    tenantId: 't1',
    userId: 'u1',
    channel: 'email',
    priority: 'normal',
    category: null,
    content: { subject: 's', body: 'b' },
    to: 'a@example.com',
    idempotencyKey: null,
    correlationId: null,
    metadata: {},
    status: 'PENDING',
    attempt: 0,
    attemptFloor: 0,
    version: 1,
    generation: 1,
    sendAt: null,
    createdAt: at,
    updatedAt: at,
    deliveredAt: null,
    nextAttemptAt: null,
    leaseUntil: null,
    publishedAt: null,
    provider: null,
    providerMessageId: null,
    lastError: null,
    deadLetteredAt: null,
    template: null,
    statusReason: null,
    seenAt: null,
    readAt: null,
    archivedAt: null,
    ...overrides,
  };
}

/** A valid email Send request as the api hands it to the domain; `overrides` replace fields. */
export function sendInput(overrides: Partial<SendInput> = {}): SendInput {
  return {
    userId: 'user-42',
    channel: 'email',
    content: { subject: 'Your order shipped', body: 'It arrives on Tuesday.' },
    to: '',
    idempotencyKey: '',
    priority: '',
    category: '',
    sendAt: null,
    metadata: {},
    correlationId: '',
    ...overrides,
  };
}
