/**
 * The generic channel loop: pull jobs from each lane's consumer, claim the notification with a
 * fenced conditional update, deliver through the channel's providers, record the outcome, publish
 * the status event, then ack / nak(delay) / term as decideDelivery says. Higher lanes get free
 * delivery slots first; while every provider's circuit is open nothing is claimed. An inline
 * provider's channel (in_app) has nothing to call: its claim is the delivery (PENDING -> DELIVERED).
 */
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { decideDelivery, type RetryPolicy } from '../domain/delivery-decision.js';
import { isPermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import {
  LANES_BY_URGENCY,
  isTerminal,
  type Channel,
  type Lane,
  type Notification,
} from '../domain/notification.js';
import { eventOf } from '../domain/notifications.js';
import { warnThrottled } from '../logger.js';
import type {
  ClaimResult,
  DeadLetterSink,
  Job,
  Logger,
  NotificationStore,
  StatusEvents,
} from '../domain/ports.js';
import type { ChainOutcome, ProviderChain } from './provider-chain.js';

/** Where a test may make the process die (kill -9) to prove nothing is lost. */
export type CrashPoint = 'after-claim' | 'during-provider' | 'after-provider' | 'after-commit';

export interface ChannelWorkerDeps {
  channel: Channel;
  lanes: readonly { lane: Lane; consumer: Consumer }[];
  decodeJob: (msg: JsMsg, channel: Channel, lane: Lane) => Job;
  store: NotificationStore;
  providers: ProviderChain;
  deadLetters: DeadLetterSink;
  /** Forgets an address a provider reported dead (a push token); absent: nothing to forget. */
  forgetAddress?: (tenantId: string, userId: string, address: string) => Promise<unknown>;
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
  /**
   * Stops pulling and lets in-flight deliveries finish; those still running after `graceMs` are
   * aborted and released for another worker (not charged to their retry budget). Resolves when
   * every message is settled.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The delay for a message we cannot handle right now (PostgreSQL down, say): doubling with each
 * delivery of the message, so an outage of minutes does not use up max_deliver.
 */
function infraRetryMs(msg: JsMsg): number {
  const deliveries = Math.max(1, msg.info.deliveryCount);
  return Math.min(2_000 * 2 ** (deliveries - 1), 60_000);
}

/**
 * How long each pull request lasts. The client expects a heartbeat from the server every half of
 * it and pulls anew after two are missed, which is how a worker notices that the server holding
 * its consumer is gone (a cluster node lost, the consumer's leader elsewhere now): 10 s instead of
 * the client's 30 s default makes that about 10 s, for one more pull per lane every 10 s when idle.
 */
const PULL_EXPIRES_MS = 10_000;

export function createChannelWorker(deps: ChannelWorkerDeps): ChannelWorker {
  const { store, providers, events, logger, channel } = deps;
  const crash = deps.crash ?? (() => undefined);
  const subscriptions: ConsumerMessages[] = [];
  const loops: Promise<void>[] = [];
  const handling = new Set<Promise<void>>();
  /** Aborts the provider calls in flight (shutdown past its grace period). */
  const inFlight = new Set<AbortController>();
  let stopping = false;

  // Delivery slots, handed over directly to the most urgent lane waiting for one: a flood of low
  // never keeps a critical job waiting for more than one slot to free up.
  let active = 0;
  const waiting = new Map<Lane, (() => void)[]>(LANES_BY_URGENCY.map((l) => [l, []]));

  async function acquireSlot(lane: Lane): Promise<void> {
    if (active < deps.concurrency) {
      active += 1;
      return;
    }
    await new Promise<void>((resolve) => waiting.get(lane)?.push(resolve));
  }

  function releaseSlot(): void {
    for (const lane of LANES_BY_URGENCY) {
      const next = waiting.get(lane)?.shift();
      if (next) {
        next(); // the slot passes on without becoming free
        return;
      }
    }
    active -= 1;
  }

  async function runLane(lane: Lane, consumer: Consumer): Promise<void> {
    const messages = await consumer.consume({
      max_messages: deps.concurrency,
      expires: PULL_EXPIRES_MS,
    });
    subscriptions.push(messages);
    for await (const msg of messages) {
      await acquireSlot(lane);
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

    // Every circuit open: leave the job in the queue, unclaimed, until a provider may be tried.
    const closedFor = providers.availableIn();
    if (closedFor > 0) {
      msg.nak(closedFor);
      return;
    }

    const inline = providers.inline;
    if (inline !== null) {
      // Nothing to call: the claim is the delivery (PENDING -> DELIVERED).
      const delivered = await claimOrSettle(msg, job, log, () =>
        store.deliverInline(job.id, job.generation, inline),
      );
      if (delivered === null) return;
      events.publish(eventOf(delivered, inline, null));
      crash('after-commit');
      msg.ack();
      return;
    }

    const n = await claimOrSettle(msg, job, log, () =>
      store.claim(job.id, job.generation, deps.leaseMs),
    );
    if (n === null) return;
    events.publish(eventOf(n, null, null));
    crash('after-claim');

    // While the provider call runs, keep both the message (ack_wait) and the claim (lease) alive,
    // so neither a redelivery nor the scheduler's reclaim starts a second, concurrent delivery.
    const heartbeat = setInterval(
      () => {
        msg.working();
        store.extendLease(n.id, n.attempt, deps.leaseMs).catch((err: unknown) => {
          warnThrottled(
            logger,
            { ...log, err: (err as Error).message },
            'extending the lease failed',
          );
        });
      },
      Math.max(100, deps.leaseMs / 3),
    );
    const shutdown = new AbortController();
    inFlight.add(shutdown);
    let outcome: ChainOutcome;
    try {
      crash('during-provider');
      outcome = await withTimeout(
        (signal) => providers.deliver(n, AbortSignal.any([signal, shutdown.signal])),
        deps.providerTimeoutMs,
        providers.names.join('|'),
      );
    } catch (error) {
      outcome = { ok: false, provider: null, error, charged: true };
    } finally {
      clearInterval(heartbeat);
      inFlight.delete(shutdown);
    }
    if (outcome.ok) crash('after-provider');

    // Not charged to the retry budget: the failure was the providers' outage (see ChainOutcome),
    // or the process is shutting down and hands the notification on.
    const released = shutdown.signal.aborted && !outcome.ok;
    const counted = outcome.ok || (outcome.charged && !released);
    const decision = released
      ? ({ status: 'RETRYING', action: 'nak', delayMs: 0, error: 'released at shutdown' } as const)
      : decideDelivery(outcome.ok ? null : outcome.error, n.attempt - n.attemptFloor, deps.retry);
    const nextAttemptAt =
      decision.action === 'nak' ? new Date(Date.now() + decision.delayMs) : null;
    let updated: Notification | null;
    try {
      updated = await store.complete(n.id, n.attempt, {
        status: decision.status,
        provider: outcome.provider,
        providerMessageId: outcome.ok ? outcome.providerMessageId : null,
        error: decision.status === 'DELIVERED' ? null : decision.error,
        nextAttemptAt,
        counted,
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
      eventOf(updated, outcome.provider, decision.status === 'DELIVERED' ? null : decision.error),
    );
    if (decision.status === 'FAILED') {
      await deps.deadLetters.add(updated, { subject: msg.subject, sequence: msg.seq });
      const dead =
        !outcome.ok && isPermanentDeliveryError(outcome.error) && outcome.error.invalidAddress;
      if (dead && n.to !== null && deps.forgetAddress) {
        // A dead push token is forgotten, so later sends do not pick it again.
        await deps.forgetAddress(n.tenantId, n.userId, n.to).catch((err: unknown) => {
          logger.warn({ ...log, err: (err as Error).message }, 'forgetting a dead address failed');
        });
      }
    }
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
        logger.warn(
          { ...log, attempt: n.attempt, err: decision.error },
          'delivery failed; dead-lettered',
        );
        msg.term();
        break;
    }
  }

  /**
   * Runs a claim; the claimed row, or null when the job is settled here instead: nak'd for later
   * when the claim could not run (PostgreSQL down), or as settleLostClaim says when it lost.
   */
  async function claimOrSettle(
    msg: JsMsg,
    job: Job,
    log: object,
    claimJob: () => Promise<ClaimResult>,
  ): Promise<Notification | null> {
    let claim: ClaimResult;
    try {
      claim = await claimJob();
    } catch (err) {
      warnThrottled(logger, { ...log, err: (err as Error).message }, 'claim failed; will retry');
      msg.nak(infraRetryMs(msg));
      return null;
    }
    if (claim.claimed) return claim.notification;
    settleLostClaim(msg, job, claim.current, log);
    return null;
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
    async stop(graceMs = Infinity) {
      stopping = true;
      for (const s of subscriptions) await s.close();
      await Promise.allSettled(loops);
      const settled = Promise.allSettled([...handling]);
      if (Number.isFinite(graceMs)) {
        let timer: NodeJS.Timeout | undefined;
        const late = await Promise.race([
          settled.then(() => false),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
        ]);
        clearTimeout(timer);
        if (late) {
          logger.warn({ inFlight: inFlight.size }, 'releasing deliveries still running');
          for (const c of inFlight) c.abort(new TransientDeliveryError('released at shutdown'));
        }
      }
      await settled;
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
