/**
 * Broadcasting status changes on core NATS. Best-effort by design: the store is the source of
 * truth, a watcher subscribes first, then reads the current state, and drops events whose
 * `version` it has already seen.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { Notification, NotificationEvent } from '../../domain/notification.js';
import type { StatusEvents } from '../../domain/ports.js';
import type { StatusEvent } from '../../domain/status-event.js';
import type { NatsLogger } from './connection.js';
import { statusFilter, statusSubject } from './layout.js';
import type { NatsLayout } from './layout.js';

/** Which status events to receive: a tenant's, optionally narrowed to a user and/or a notification. */
export type StatusFilter = Parameters<StatusEvents['subscribe']>[0];

/**
 * Status events on core NATS. `subscribe()` returns a subscription whose `ready` resolves after
 * a flush, once the server has registered it: await it before reading the current state. Publish
 * never throws (a disconnected or closed connection drops the event).
 */
export type StatusBus = StatusEvents;

/** Date fields of the domain types, sent as ISO strings and revived as Dates. */
const NOTIFICATION_DATES = [
  'createdAt',
  'updatedAt',
  'sendAt',
  'deliveredAt',
  'nextAttemptAt',
  'leaseUntil',
  'publishedAt',
  'deadLetteredAt',
  'seenAt',
  'readAt',
  'archivedAt',
] as const satisfies readonly (keyof Notification)[];
const EVENT_DATES = ['time'] as const satisfies readonly (keyof NotificationEvent)[];

/** Status events on `statusSubject(...)` of `layout`, as JSON. */
export function createStatusBus(
  nc: NatsConnection,
  layout: NatsLayout,
  opts: { logger?: NatsLogger } = {},
): StatusBus {
  const { logger } = opts;
  return {
    publish(e) {
      const n = e.notification;
      try {
        nc.publish(statusSubject(layout, n.tenantId, n.userId, n.id), encodeStatusEvent(e));
      } catch (err) {
        logger?.warn({ err, notificationId: n.id }, 'status event not published');
      }
    },
    subscribe(filter) {
      const sub = nc.subscribe(statusFilter(layout, filter.tenantId, filter));
      const ready = nc.flush();
      // Callers that never await `ready` must not see an unhandled rejection.
      ready.catch(() => undefined);
      return {
        ready,
        close() {
          sub.unsubscribe();
        },
        [Symbol.asyncIterator]: () => events(sub, logger),
      };
    },
  };
}

async function* events(
  sub: Subscription,
  logger: NatsLogger | undefined,
): AsyncGenerator<StatusEvent> {
  try {
    for await (const msg of sub) {
      try {
        yield decodeStatusEvent(msg.string());
      } catch (err) {
        logger?.warn({ err, subject: msg.subject }, 'malformed status event dropped');
      }
    }
  } finally {
    // Leaving the loop early (break, return) must release the server-side subscription too.
    sub.unsubscribe();
  }
}

/**
 * A status event as JSON, exactly as `JSON.stringify` writes it. The Dates are turned into ISO
 * strings first: `JSON.stringify` calling each Date's `toJSON` cost about as much as the rest of
 * the event (two events per notification).
 */
export function encodeStatusEvent(e: StatusEvent): string {
  return JSON.stringify({
    notification: withIsoDates(e.notification, NOTIFICATION_DATES),
    event: withIsoDates(e.event, EVENT_DATES),
  });
}

/** A shallow copy with the Date fields as `Date.prototype.toJSON` gives them (null if invalid). */
function withIsoDates<T extends object>(obj: T, keys: readonly (keyof T)[]): T {
  const copy = { ...obj };
  for (const key of keys) {
    const v = copy[key];
    if (v instanceof Date) {
      (copy as Record<keyof T, unknown>)[key] = Number.isNaN(v.getTime()) ? null : v.toISOString();
    }
  }
  return copy;
}

/** Parses a status event's JSON, reviving its Date fields. Throws on anything else. */
export function decodeStatusEvent(json: string): StatusEvent {
  const value = JSON.parse(json) as unknown;
  if (!isObject(value) || !isObject(value.notification) || !isObject(value.event)) {
    throw new Error('status event must be {notification, event}');
  }
  reviveDates(value.notification, NOTIFICATION_DATES);
  reviveDates(value.event, EVENT_DATES);
  return value as unknown as StatusEvent;
}

function reviveDates(obj: Record<string, unknown>, keys: readonly string[]): void {
  for (const key of keys) {
    const v = obj[key];
    if (v === null || v === undefined) continue;
    const d = typeof v === 'string' ? new Date(v) : undefined;
    if (d === undefined || Number.isNaN(d.getTime())) {
      throw new Error(`status event field ${key} is not a date: ${JSON.stringify(v)}`);
    }
    obj[key] = d;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
