/**
 * The dead-letter stream: one message per dead-lettered notification on
 * `<prefix>.dlq.<channel>.<id>`, with where it came from and why it failed in headers. PostgreSQL's
 * FAILED rows are what the API lists and replays; this stream is the copy for NATS-side tooling.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import type { Notification } from '../../domain/notification.js';
import type { DeadLetterOrigin, DeadLetterSink, Logger } from '../../domain/ports.js';
import { deadLetterStreamName, deadLetterSubject } from './layout.js';
import type { NatsLayout } from './layout.js';

/** Header names on every dead letter. */
export const DLQ_HEADERS = {
  originalSubject: 'Herald-Original-Subject',
  originalSequence: 'Herald-Original-Sequence',
  attempts: 'Herald-Attempts',
  lastError: 'Herald-Last-Error',
  notificationId: 'Herald-Notification-Id',
} as const;

export function createDeadLetterSink(
  js: JetStreamClient,
  jsm: JetStreamManager,
  layout: NatsLayout,
  logger: Logger,
): DeadLetterSink {
  const stream = deadLetterStreamName(layout);
  return {
    async add(n: Notification, origin: DeadLetterOrigin | null) {
      const h = headers();
      h.set(DLQ_HEADERS.notificationId, n.id);
      h.set(DLQ_HEADERS.attempts, String(n.attempt - n.attemptFloor));
      h.set(DLQ_HEADERS.lastError, headerValue(n.lastError ?? ''));
      if (origin !== null) {
        h.set(DLQ_HEADERS.originalSubject, origin.subject);
        h.set(DLQ_HEADERS.originalSequence, String(origin.sequence));
      }
      const payload = {
        id: n.id,
        tenantId: n.tenantId,
        userId: n.userId,
        channel: n.channel,
        priority: n.priority,
        attempt: n.attempt,
        generation: n.generation,
        lastError: n.lastError,
        deadLetteredAt: n.deadLetteredAt,
      };
      try {
        await js.publish(deadLetterSubject(layout, n.channel, n.id), JSON.stringify(payload), {
          headers: h,
          msgID: `dlq:${n.id}:${n.generation}`,
          expect: { streamName: stream },
        });
      } catch (err) {
        logger.warn(
          { notificationId: n.id, err: (err as Error).message },
          'copying the dead letter to its stream failed; PostgreSQL still lists it',
        );
      }
    },
    async remove(items) {
      for (const n of items) {
        try {
          await jsm.streams.purge(stream, { filter: deadLetterSubject(layout, n.channel, n.id) });
        } catch (err) {
          logger.warn(
            { notificationId: n.id, err: (err as Error).message },
            'removing the dead letter from its stream failed',
          );
        }
      }
    },
  };
}

/** Header values are one line; errors are cut to a sane length. */
function headerValue(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').slice(0, 1000);
}
