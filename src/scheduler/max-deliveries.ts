/**
 * Jobs the queue gave up on. When a job reaches max_deliver, JetStream stops delivering it but
 * keeps it in the work-queue stream and announces it once, on core NATS; the advisory stream
 * captures those announcements and this loop settles each: the notification fails into the dead
 * letters when its retry budget is spent (say the worker died on its last attempt), or is
 * published again under a new generation when it is not (max_deliver also counts deliveries that
 * were no attempt: outages, open circuits, lost claims). Then the stuck job is deleted.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import type { Consumer, ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Notification } from '../domain/notification.js';
import { eventOf } from '../domain/notifications.js';
import type { DeadLetterSink, Logger, NotificationStore, StatusEvents } from '../domain/ports.js';
import { warnThrottled } from '../logger.js';

export interface MaxDeliveriesDeps {
  consumer: Consumer;
  jsm: JetStreamManager;
  store: NotificationStore;
  events: StatusEvents;
  deadLetters: DeadLetterSink;
  dispatch: (rows: readonly Notification[]) => Promise<void>;
  maxAttempts: number;
  logger: Logger;
}

interface Advisory {
  stream: string;
  stream_seq: number;
}

const MESSAGE_NOT_FOUND = 10037;

export function createMaxDeliveriesHandler(deps: MaxDeliveriesDeps) {
  const { logger } = deps;
  let messages: ConsumerMessages | null = null;
  let loop: Promise<void> = Promise.resolve();
  let stopped = false;

  async function settle(msg: JsMsg): Promise<void> {
    let advisory: Advisory;
    try {
      advisory = msg.json<Advisory>();
      if (typeof advisory.stream !== 'string' || typeof advisory.stream_seq !== 'number') {
        throw new Error('not a max-deliveries advisory');
      }
    } catch (err) {
      logger.error({ err: (err as Error).message, seq: msg.seq }, 'malformed advisory: dropped');
      msg.term();
      return;
    }
    const { stream, stream_seq: seq } = advisory;
    let job: { id: string; subject: string } | null = null;
    try {
      const stored = await deps.jsm.streams.getMessage(stream, { seq });
      if (stored !== null) {
        job = { id: stored.json<{ id: string }>().id, subject: stored.subject };
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === MESSAGE_NOT_FOUND)) throw err;
    }
    if (job !== null) {
      const result = await deps.store.settleMaxDelivered(job.id, deps.maxAttempts);
      if (result.action === 'failed') {
        deps.events.publish(eventOf(result.notification, null, result.notification.lastError));
        await deps.deadLetters.add(result.notification, { subject: job.subject, sequence: seq });
        logger.warn({ notificationId: job.id }, 'max deliveries reached: dead-lettered');
      } else if (result.action === 'revived') {
        await deps.dispatch([result.notification]);
        logger.warn({ notificationId: job.id }, 'max deliveries reached: published again');
      }
      try {
        await deps.jsm.streams.deleteMessage(stream, seq);
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === MESSAGE_NOT_FOUND)) throw err;
      }
    }
    msg.ack();
  }

  return {
    start() {
      loop = (async () => {
        messages = await deps.consumer.consume({ max_messages: 50 });
        if (stopped) await messages.close();
        for await (const msg of messages) {
          await settle(msg).catch((err: unknown) => {
            warnThrottled(
              logger,
              { err: (err as Error).message },
              'settling an advisory failed; will retry',
            );
            msg.nak(5_000);
          });
        }
      })().catch((err: unknown) => logger.error({ err }, 'advisory loop ended'));
    },
    async stop() {
      stopped = true;
      await messages?.close();
      await loop;
    },
  };
}
