/**
 * The generic channel loop: pull jobs from each lane's consumer, claim the notification with a
 * fenced conditional update, deliver through the channel's provider, record the outcome, publish
 * the status event, then ack / nak(delay) / term as decideDelivery says.
 */
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { decideDelivery, type RetryPolicy } from '../domain/delivery-decision.js';
import { TransientDeliveryError } from '../domain/errors.js';
import { isTerminal, type Channel, type Lane, type Notification } from '../domain/notification.js';
import { eventOf } from '../domain/notifications.js';
import type { Job, Logger, NotificationStore, Provider, StatusEvents } from '../domain/ports.js';

/** Where a test may make the process die (kill -9) to prove nothing is lost. */
export type CrashPoint = 'after-claim' | 'during-provider' | 'after-commit';

export interface ChannelWorkerDeps {
  channel: Channel;
  lanes: readonly { lane: Lane; consumer: Consumer }[];
  decodeJob: (msg: JsMsg, channel: Channel, lane: Lane) => Job;
  store: NotificationStore;
  provider: Provider;
  events: StatusEvents;
  logger: Logger;
  retry: RetryPolicy;
  /** How long a claim holds the notification; equals the consumer's ack_wait. */
  leaseMs: number;
  providerTimeoutMs: number;
  /** Messages in flight at once for this channel. */
  concurrency: number;
  crash?: (point: CrashPoint) => void;
}

export interface ChannelWorker {
  start(): void;
  /** Stops pulling, lets in-flight deliveries finish, and resolves when they have. */
  stop(): Promise<void>;
}

/**
 * The delay for a message we cannot handle right now (PostgreSQL down, say): doubling with each
 * delivery of the message, so an outage of minutes does not use up max_deliver.
 */
function infraRetryMs(msg: JsMsg): number {
  const deliveries = Math.max(1, msg.info.deliveryCount);
  return Math.min(2_000 * 2 ** (deliveries - 1), 60_000);
}

export function createChannelWorker(deps: ChannelWorkerDeps): ChannelWorker {
  const { store, provider, events, logger, channel } = deps;
  const crash = deps.crash ?? (() => undefined);
  const subscriptions: ConsumerMessages[] = [];
  const loops: Promise<void>[] = [];
  const handling = new Set<Promise<void>>();
  let slotWaiters: (() => void)[] = [];
  let stopping = false;

  async function acquireSlot(): Promise<void> {
    while (handling.size >= deps.concurrency) {
      await new Promise<void>((resolve) => slotWaiters.push(resolve));
    }
  }

  function releaseSlot(): void {
    const waiters = slotWaiters;
    slotWaiters = [];
    for (const w of waiters) w();
  }

  async function runLane(lane: Lane, consumer: Consumer): Promise<void> {
    const messages = await consumer.consume({ max_messages: deps.concurrency });
    subscriptions.push(messages);
    for await (const msg of messages) {
      await acquireSlot();
      const p = handle(msg, lane)
        .catch((err: unknown) => {
          logger.error({ err, channel, lane }, 'unexpected error handling a job');
          msg.nak(infraRetryMs(msg));
        })
        .finally(() => {
          handling.delete(p);
          releaseSlot();
        });
      handling.add(p);
    }
  }

  async function handle(msg: JsMsg, lane: Lane): Promise<void> {
    let job: Job;
    try {
      job = deps.decodeJob(msg, channel, lane);
    } catch (err) {
      logger.error(
        { err: (err as Error).message, channel, lane, seq: msg.seq },
        'malformed job: terminated',
      );
      msg.term();
      return;
    }
    const log = { notificationId: job.id, channel, lane, generation: job.generation };

    let claim;
    try {
      claim = await store.claim(job.id, job.generation, deps.leaseMs);
    } catch (err) {
      logger.warn({ ...log, err: (err as Error).message }, 'claim failed; will retry');
      msg.nak(infraRetryMs(msg));
      return;
    }
    if (!claim.claimed) {
      settleLostClaim(msg, job, claim.current, log);
      return;
    }
    const n = claim.notification;
    events.publish(eventOf(n, provider.name, null));
    crash('after-claim');

    // While the provider call runs, keep both the message (ack_wait) and the claim (lease) alive,
    // so neither a redelivery nor the scheduler's reclaim starts a second, concurrent delivery.
    const heartbeat = setInterval(
      () => {
        msg.working();
        store.extendLease(n.id, n.attempt, deps.leaseMs).catch((err: unknown) => {
          logger.warn({ ...log, err: (err as Error).message }, 'extending the lease failed');
        });
      },
      Math.max(1_000, deps.leaseMs / 3),
    );
    let error: unknown = null;
    let providerMessageId: string | null = null;
    try {
      crash('during-provider');
      const result = await withTimeout(
        (signal) => provider.deliver(n, signal),
        deps.providerTimeoutMs,
        provider.name,
      );
      providerMessageId = result.providerMessageId ?? null;
    } catch (err) {
      error = err;
    } finally {
      clearInterval(heartbeat);
    }

    const decision = decideDelivery(error, n.attempt, deps.retry);
    const nextAttemptAt =
      decision.action === 'nak' ? new Date(Date.now() + decision.delayMs) : null;
    let updated: Notification | null;
    try {
      updated = await store.complete(n.id, n.attempt, {
        status: decision.status,
        provider: provider.name,
        providerMessageId,
        error: decision.status === 'DELIVERED' ? null : decision.error,
        nextAttemptAt,
      });
    } catch (err) {
      // The outcome is not recorded: leave the message to be redelivered once the lease expires.
      logger.error({ ...log, err: (err as Error).message }, 'recording the outcome failed');
      msg.nak(deps.leaseMs);
      return;
    }
    if (updated === null) {
      logger.warn({ ...log, attempt: n.attempt }, 'claim lost before the outcome was recorded');
      msg.ack();
      return;
    }
    events.publish(
      eventOf(updated, provider.name, decision.status === 'DELIVERED' ? null : decision.error),
    );
    crash('after-commit');
    switch (decision.action) {
      case 'ack':
        msg.ack();
        break;
      case 'nak':
        logger.info(
          { ...log, attempt: n.attempt, delayMs: decision.delayMs, err: decision.error },
          'retrying',
        );
        msg.nak(decision.delayMs);
        break;
      case 'term':
        logger.warn({ ...log, attempt: n.attempt, err: decision.error }, 'delivery failed');
        msg.term();
        break;
    }
  }

  /** A job that did not win the claim: drop it if it is stale, else let it come back later. */
  function settleLostClaim(msg: JsMsg, job: Job, current: Notification | null, log: object): void {
    if (current === null || isTerminal(current.status) || current.generation > job.generation) {
      // Done, gone, or in the hands of a newer generation's job: nothing left for this one.
      msg.ack();
      return;
    }
    if (current.status === 'SCHEDULED') {
      msg.ack(); // the scheduler publishes it again when it is due
      return;
    }
    // Another worker holds an unexpired lease (or a race with a sweep): come back when it ends.
    const wait = current.leaseUntil
      ? current.leaseUntil.getTime() - Date.now() + 250
      : infraRetryMs(msg);
    logger.debug({ ...log, status: current.status }, 'claim lost; retrying after the lease');
    msg.nak(Math.max(250, Math.min(wait, deps.leaseMs)));
  }

  return {
    start() {
      for (const { lane, consumer } of deps.lanes) {
        loops.push(
          runLane(lane, consumer).catch((err: unknown) => {
            if (!stopping) logger.error({ err, channel, lane }, 'consumer loop ended');
          }),
        );
      }
    },
    async stop() {
      stopping = true;
      for (const s of subscriptions) await s.close();
      await Promise.allSettled(loops);
      await Promise.allSettled([...handling]);
    },
  };
}

/**
 * Runs `call` with a signal that aborts after `ms`; the call then fails with a transient error
 * whether or not the provider honours the signal.
 */
async function withTimeout<T>(
  call: (signal: AbortSignal) => Promise<T>,
  ms: number,
  name: string,
): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TransientDeliveryError(`${name} timed out after ${ms} ms`);
      abort.abort(err);
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([call(abort.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
