import { describe, expect, it } from 'vitest';
import { decodeStatusEvent, encodeStatusEvent } from '../../src/infra/nats/status-bus.js';
import type { StatusEvent } from '../../src/domain/status-event.js';
import { draftNotification } from '../support/fixtures.js';

function deliveredEvent(): StatusEvent {
  const at = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
  const notification = draftNotification({
    status: 'DELIVERED',
    version: 2,
    attempt: 1,
    createdAt: at,
    deliveredAt: new Date(at.getTime() + 12),
    publishedAt: new Date(at.getTime() + 3),
    provider: 'smtp',
    content: { subject: 's', body: 'b', data: { when: '2030-01-02T03:04:05.678Z' } },
    metadata: { k: 'v' },
    template: { id: 'welcome', version: 3, locale: 'de' },
  });
  return {
    notification,
    event: {
      notificationId: notification.id,
      version: 2,
      status: 'DELIVERED',
      attempt: 1,
      provider: 'smtp',
      error: null,
      generation: 1,
      time: new Date(at.getTime() + 12),
      inboxChange: null,
    },
  };
}

describe('encodeStatusEvent', () => {
  it('writes exactly what JSON.stringify writes for the event', () => {
    const e = deliveredEvent();
    expect(encodeStatusEvent(e)).toBe(JSON.stringify(e));
  });

  it('writes an invalid Date as null, as JSON.stringify does', () => {
    const e = deliveredEvent();
    e.notification.readAt = new Date(Number.NaN);
    const json = encodeStatusEvent(e);
    expect(json).toBe(JSON.stringify(e));
    expect(decodeStatusEvent(json).notification.readAt).toBeNull();
  });

  it('leaves the event it encodes unchanged', () => {
    const e = deliveredEvent();
    const before = structuredClone(e);
    encodeStatusEvent(e);
    expect(e).toEqual(before);
    expect(e.notification.createdAt).toBeInstanceOf(Date);
  });

  it('decodes back to an equal event, Dates as Dates and date-like strings in data as strings', () => {
    const e = deliveredEvent();
    const back = decodeStatusEvent(encodeStatusEvent(e));
    expect(back).toEqual(e);
    expect(back.notification.deliveredAt).toBeInstanceOf(Date);
    expect(back.event.time).toBeInstanceOf(Date);
    expect(back.notification.content.data).toEqual({ when: '2030-01-02T03:04:05.678Z' });
  });
});
