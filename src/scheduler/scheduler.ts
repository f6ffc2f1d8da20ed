/**
 * The scheduler's sweeps. Leader-less: every statement locks the rows it moves with SKIP LOCKED and
 * republishing is deduplicated by message id, so any number of schedulers may run.
 *
 * - due: SCHEDULED rows whose send_at has come -> PENDING, published; or SUPPRESSED when the user
 *   opted out while they waited (preferences are checked again, quiet hours are not);
 * - reclaim: PROCESSING rows whose lease expired (the worker died) -> RETRYING under a new
 *   generation, published; or FAILED and dead-lettered when that was the last attempt;
 * - outbox: PENDING / RETRYING rows whose publish was never confirmed -> published again;
 * - stale: PENDING / RETRYING rows published long ago that no worker picked up (the queue lost the
 *   message, or gave up on it after max_deliver) -> a new generation, published again.
 */
import type { Notification } from '../domain/notification.js';
import { eventOf, optOuts } from '../domain/notifications.js';
import type { DeadLetterSink, Logger, NotificationStore, StatusEvents } from '../domain/ports.js';
import type { Preferences } from '../domain/preferences.js';
import { warnThrottled } from '../logger.js';

export interface SchedulerDeps {
  store: NotificationStore;
  events: StatusEvents;
  /** Publishes rows to the queue and stamps them published (Notifications.dispatch). */
  dispatch: (rows: readonly Notification[]) => Promise<void>;
  logger: Logger;
  /** Opt-outs made while a notification waited suppress it at release; null releases all. */
  preferences: Pick<Preferences, 'forSend'> | null;
  intervalMs: number;
  /** How long an unpublished row may wait for its original publish before the sweep takes it. */
  outboxGraceMs: number;
  /** How long a published row may wait for a worker before it is published again. */
  staleAfterMs: number;
  /** How long an idempotency key holds; older ones are forgotten. */
  idempotencyTtlMs: number;
  /** The retry budget: a lost worker's last attempt leaves a dead letter. */
  maxAttempts: number;
  deadLetters: DeadLetterSink;
  batchSize?: number;
  now?: () => Date;
}

export interface SweepCounts {
  released: number;
  suppressed: number;
  reclaimed: number;
  failed: number;
  revived: number;
  republished: number;
}

export function createScheduler(deps: SchedulerDeps) {
  const { store, events, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const limit = deps.batchSize ?? 500;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  // The stale check scans every waiting row, so under a backlog it runs less often than the
  // other sweeps: a few times per staleAfterMs, at most once a minute apart.
  const reviveEveryMs = Math.min(deps.staleAfterMs / 5, 60_000);
  let lastReviveAt = 0;

  /**
   * Due rows are checked against the preferences before they are released, so one the user has
   * opted out of meanwhile goes SCHEDULED → SUPPRESSED and never reaches the queue; only the rows
   * checked are released.
   */
  async function releaseDue(at: Date) {
    if (deps.preferences === null) {
      return { released: await store.releaseDue(at, limit), suppressed: [] };
    }
    const due = await store.dueScheduled(at, limit);
    if (due.length === 0) return { released: [], suppressed: [] };
    const reasons = await optOuts(deps.preferences, due);
    const suppressed = await store.suppressScheduled(
      due.flatMap((n) => {
        const reason = reasons.get(n.id);
        return reason === undefined ? [] : [{ id: n.id, version: n.version, reason }];
      }),
    );
    const keep = due.filter((n) => !reasons.has(n.id)).map((n) => n.id);
    const released = keep.length === 0 ? [] : await store.releaseDue(at, limit, keep);
    if (suppressed.length > 0) {
      logger.info({ count: suppressed.length }, 'suppressed scheduled notifications opted out of');
    }
    return { released, suppressed };
  }

  /** One pass of every sweep. */
  async function sweep(): Promise<SweepCounts> {
    const at = now();
    const { released, suppressed } = await releaseDue(at);
    for (const n of suppressed) events.publish(eventOf(n, null, n.statusReason));
    const changed = await store.reclaimExpired(at, limit, deps.maxAttempts);
    for (const n of [...released, ...changed]) events.publish(eventOf(n, null, n.lastError));
    const failed = changed.filter((n) => n.status === 'FAILED');
    for (const n of failed) await deps.deadLetters.add(n, null);
    if (failed.length > 0) {
      logger.warn(
        { count: failed.length },
        'dead-lettered notifications lost on their last attempt',
      );
    }
    const reclaimed = changed.filter((n) => n.status !== 'FAILED');
    if (reclaimed.length > 0) {
      logger.warn(
        { count: reclaimed.length },
        'reclaimed notifications whose worker lease expired',
      );
    }
    let revived: Notification[] = [];
    if (at.getTime() - lastReviveAt >= reviveEveryMs) {
      lastReviveAt = at.getTime();
      revived = await store.reviveStale(new Date(at.getTime() - deps.staleAfterMs), limit);
    }
    if (revived.length > 0) {
      logger.warn({ count: revived.length }, 'republishing notifications no worker picked up');
    }
    const expired = await store.expireIdempotencyKeys(
      new Date(at.getTime() - deps.idempotencyTtlMs),
      limit,
    );
    if (expired > 0) logger.debug({ count: expired }, 'forgot expired idempotency keys');
    const stale = await store.unpublished(new Date(at.getTime() - deps.outboxGraceMs), limit);
    const fresh = [...released, ...reclaimed, ...revived];
    const freshIds = new Set(fresh.map((n) => n.id));
    const rows = [...fresh, ...stale.filter((n) => !freshIds.has(n.id))];
    if (rows.length > 0) await deps.dispatch(rows);
    if (stale.length > 0)
      logger.info({ count: stale.length }, 'outbox: republished unpublished notifications');
    return {
      released: released.length,
      suppressed: suppressed.length,
      reclaimed: reclaimed.length,
      failed: failed.length,
      revived: revived.length,
      republished: stale.length,
    };
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep()
        .catch((err: unknown) =>
          warnThrottled(logger, { err: (err as Error).message }, 'sweep failed; will retry'),
        )
        .finally(schedule);
    }, deps.intervalMs);
  }

  return {
    sweep,
    start() {
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

export type Scheduler = ReturnType<typeof createScheduler>;
