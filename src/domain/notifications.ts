/**
 * The notification use cases behind NotificationService: send, get, list, cancel, watch. They
 * speak domain types; server/ maps the contract onto them.
 */
import {
  AlreadyExistsError,
  RateLimitedError,
  FailedPreconditionError,
  NotFoundError,
  ValidationError,
  type FieldViolation,
} from './errors.js';
import { sendBatch } from './batch.js';
import { canonicalJson } from './canonical-json.js';
import { isUuid, uuidv7 } from './ids.js';
import {
  applyInboxChange,
  type Channel,
  type InboxState,
  type Notification,
  type NotificationEvent,
  type PinnedTemplate,
  type Status,
} from './notification.js';
import { decodePageToken, pageOf } from './page-token.js';
import type { Job, JobQueue, Logger, NotificationStore, StatusEvents } from './ports.js';
import type { RateLimitDecision, RateLimiter } from './rate-limit-policy.js';
import { admit, decide, type Admission, type Preferences } from './preferences.js';
import { addressFor, needsAddress, type Recipient, type RecipientStore } from './recipients.js';
import type { StatusEvent } from './status-event.js';
import type { TemplateRenderer } from './templates.js';
import { countStats, type StatsInput } from './stats.js';
import {
  validateSend,
  validateUserId,
  type SendCommand,
  type SendInput,
  type SendRules,
} from './validation.js';

export interface NotificationsDeps {
  store: NotificationStore;
  queue: JobQueue;
  events: StatusEvents;
  logger: Logger;
  /** A stable digest of a string (sha-256 hex in production), for idempotency request hashes. */
  hash: (s: string) => string;
  /** Per-user send limits; null when off. */
  rateLimiter: RateLimiter | null;
  /** Where a Send without `to` goes. */
  recipients: RecipientStore;
  /** Renders Sends by template; without it such Sends are FailedPrecondition. */
  templates?: TemplateRenderer;
  /**
   * Opt-outs and quiet hours (one query per Send; DeliverNow checks opt-outs again). Null admits
   * every Send as asked (tests of other parts).
   */
  preferences: Pick<Preferences, 'forSend'> | null;
  /** This deployment's own Send rules (e.g. HERALD_WEBHOOK_PRIVATE_ADDRESSES); none when absent. */
  sendRules?: SendRules;
  now?: () => Date;
  /**
   * How long after publishing the api stamps published_at on rows no worker has claimed (and so
   * stamped) yet; default 1 s. Keep it well under the scheduler's outbox grace, after which rows
   * left unstamped are republished.
   */
  stampDelayMs?: number;
  /** How many notifications a watch remembers the latest version of; default 10,000. */
  watchMemory?: number;
}

export interface SendResult {
  notification: Notification;
  /** True when an earlier request with the same idempotency key is being replayed. */
  replayed: boolean;
  /** The rate limit this send was counted against (null: not counted — a replay, or limits off). */
  rateLimit: RateLimitDecision | null;
}

export interface ListInput {
  userId: string;
  statuses: readonly Status[];
  channels: readonly Channel[];
  createdAfter: Date | null;
  createdBefore: Date | null;
  pageSize: number;
  pageToken: string;
}

export type WatchTarget = (
  { notificationId: string; afterVersion: number | null } | { userId: string; initialCount: number }
) & {
  /** Only states with these statuses are sent; empty sends every state. */
  statuses?: readonly Status[];
};

export const PAGE_SIZE = { default: 50, max: 500 } as const;
export const WATCH_INITIAL_MAX = 100;

export type Notifications = ReturnType<typeof createNotifications>;

export function createNotifications(deps: NotificationsDeps) {
  const { store, events, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const watchMemory = deps.watchMemory ?? 10_000;
  const inFlight = new Set<Promise<void>>();

  /**
   * Published rows waiting for their published_at stamp. The stamp waits a moment: a worker's
   * claim stamps the row it claims, so by then most rows need no write of their own (one row
   * version fewer per notification); only rows still queued are stamped here.
   */
  let unstamped: { id: string; generation: number }[] = [];
  let stampTimer: NodeJS.Timeout | undefined;

  function stampLater(jobs: readonly { id: string; generation: number }[]): void {
    unstamped.push(...jobs);
    stampTimer ??= setTimeout(() => track(stampNow()), deps.stampDelayMs ?? 1_000).unref();
  }

  async function stampNow(): Promise<void> {
    clearTimeout(stampTimer);
    stampTimer = undefined;
    const jobs = unstamped;
    unstamped = [];
    if (jobs.length > 0) await store.markPublished(jobs);
  }

  /** Hands notifications to the queue; returns the ones that reached it. */
  async function publish(
    rows: readonly Notification[],
  ): Promise<{ id: string; generation: number }[]> {
    const published: { id: string; generation: number }[] = [];
    await Promise.all(
      rows.map(async (n) => {
        try {
          await deps.queue.publish(jobOf(n));
          published.push({ id: n.id, generation: n.generation });
        } catch (err) {
          logger.warn(
            { notificationId: n.id, err: errorMessage(err) },
            'publish failed; the outbox sweep will publish it',
          );
        }
      }),
    );
    return published;
  }

  /**
   * Publishes and stamps at once (the scheduler's sweeps: their rows are old enough for the next
   * sweep to take again if left unstamped); failures wait for the sweep.
   */
  async function dispatch(rows: readonly Notification[]): Promise<void> {
    const published = await publish(rows);
    if (published.length > 0) await store.markPublished(published);
  }

  /** Runs background work without making the caller wait; tracked so shutdown can drain it. */
  function track(work: Promise<void>): void {
    const p = work
      .catch((err: unknown) => {
        logger.warn(
          { err: errorMessage(err) },
          'stamping published_at failed; the sweep will retry',
        );
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  }

  /** A new or released row: published without making the caller wait, stamped a moment later. */
  function dispatchInBackground(rows: readonly Notification[]): void {
    track(publish(rows).then(stampLater));
  }

  async function send(tenantId: string, input: SendInput): Promise<SendResult> {
    const at = now();
    const cmd = validateSend(input, at, deps.sendRules);
    const requestHash = cmd.idempotencyKey === null ? null : deps.hash(canonicalJson(cmd));
    const replay = (existing: { notification: Notification; requestHash: string | null }) => {
      if (existing.requestHash !== requestHash) {
        throw new AlreadyExistsError(
          'idempotency_key was already used with a different request; use a new key for a new notification',
        );
      }
      return { notification: existing.notification, replayed: true, rateLimit: null };
    };
    // A replay is answered before the rate limit: it costs no quota.
    if (cmd.idempotencyKey !== null) {
      const existing = await store.byIdempotencyKey(tenantId, cmd.idempotencyKey);
      if (existing !== null) return replay(existing);
    }
    // The stored recipient, read at most once per Send and only when a step needs it.
    let recipientRead: Promise<Recipient | null> | undefined;
    const recipient = () => (recipientRead ??= deps.recipients.get(tenantId, cmd.userId));
    // By template: rendered now, in the recipient's locale, from the version current at this
    // moment; the notification keeps the content and the version, so later versions change
    // nothing already accepted.
    let pinned: PinnedTemplate | null = null;
    if (cmd.template !== undefined) {
      if (deps.templates === undefined)
        throw new FailedPreconditionError('sending by template is not available in this process');
      const rendered = await deps.templates.renderForSend(
        tenantId,
        cmd.template,
        cmd.channel,
        (await recipient())?.locale ?? null,
      );
      cmd.content = rendered.content;
      pinned = rendered.pinned;
    }
    // Preferences and quiet hours set the initial state before any quota is taken: a suppressed
    // Send costs none, and needs no address (the user opted out, whether reachable or not).
    const admission = await admitSend(tenantId, cmd, at);
    // No direct address on a channel that needs one: the recipient's (FailedPrecondition when it
    // has none), resolved before any quota is taken. in_app and webhook Sends never read it.
    if (cmd.to === null && admission.status !== 'SUPPRESSED' && needsAddress(cmd.channel)) {
      cmd.to = addressFor(await recipient(), cmd.userId, cmd.channel);
    }
    const ticket =
      deps.rateLimiter && admission.status !== 'SUPPRESSED'
        ? await deps.rateLimiter.take({ tenantId, userId: cmd.userId, channel: cmd.channel })
        : null;
    if (ticket !== null && !ticket.allowed) {
      throw new RateLimitedError(
        `rate limit: at most ${ticket.limit} sends per ${ticket.windowMs / 1000} s for user_id ${JSON.stringify(cmd.userId)} (policy ${ticket.policy}); retry in ${Math.ceil(ticket.retryAfterMs / 1000)} s`,
        ticket,
      );
    }
    let result;
    try {
      result = await store.insert(
        { ...newNotification(tenantId, cmd, at, pinned), ...admission },
        requestHash,
      );
    } catch (err) {
      await ticket?.release();
      throw err;
    }
    if (!result.created) {
      // A concurrent duplicate won the key: this request is a replay after all.
      await ticket?.release();
      return replay(result);
    }
    const created = result.notification;
    // As the stored first event: its error is the reason (an opt-out, quiet hours).
    events.publish(eventOf(created, null, created.statusReason));
    if (created.status === 'PENDING') dispatchInBackground([created]);
    return { notification: created, replayed: false, rateLimit: ticket };
  }

  async function get(tenantId: string, id: string) {
    requireUuid(id, 'id');
    const notification = await store.get(tenantId, id);
    if (notification === null) throw new NotFoundError(`notification ${id}`);
    return { notification, events: await store.history(tenantId, id) };
  }

  /** `known`: violations the caller already found in the request (see server/mapping.ts). */
  async function list(tenantId: string, input: ListInput, known: readonly FieldViolation[] = []) {
    const violations = [...known];
    if (input.pageSize < 0 || input.pageSize > PAGE_SIZE.max)
      violations.push({ field: 'page_size', description: `must be 0 to ${PAGE_SIZE.max}` });
    // Empty: every user's.
    if (input.userId !== '')
      validateUserId(input.userId, (field, description) => violations.push({ field, description }));
    if (input.createdAfter && input.createdBefore && input.createdAfter >= input.createdBefore)
      violations.push({ field: 'created_before', description: 'must be after created_after' });
    const before =
      input.pageToken === '' ? null : decodePageToken('notifications', input.pageToken);
    if (before === undefined)
      violations.push({ field: 'page_token', description: 'is not a token this API returned' });
    if (violations.length > 0) throw new ValidationError(violations);
    const limit = input.pageSize === 0 ? PAGE_SIZE.default : input.pageSize;
    const rows = await store.list(tenantId, {
      userId: input.userId === '' ? null : input.userId,
      statuses: input.statuses,
      channels: input.channels,
      createdAfter: input.createdAfter,
      createdBefore: input.createdBefore,
      before: before ? { createdAt: before.at, id: before.id } : null,
      limit: limit + 1,
    });
    const { page, nextPageToken } = pageOf('notifications', rows, limit, (n) => ({
      at: n.createdAt,
      id: n.id,
    }));
    return { notifications: page, nextPageToken };
  }

  /**
   * SUPPRESSED by an opt-out, SCHEDULED by a future send_at or quiet hours, else PENDING. One
   * query: the preferences come with the recipient's time zone, so a Send with a direct address
   * needs no recipient read.
   */
  async function admitSend(tenantId: string, cmd: SendCommand, at: Date): Promise<Admission> {
    const asked: Admission = {
      status: cmd.sendAt === null ? 'PENDING' : 'SCHEDULED',
      sendAt: cmd.sendAt,
      statusReason: null,
    };
    if (deps.preferences === null) return asked;
    const prefs = await deps.preferences.forSend(tenantId, cmd.userId);
    return admit(cmd, prefs, prefs.recipientTimeZone, at);
  }

  /**
   * SCHEDULED → PENDING now, bypassing quiet hours, and handed to the workers; or SUPPRESSED when
   * the user has opted out since it was accepted. Idempotent: one already on its way or delivered
   * is returned as it is.
   */
  async function deliverNow(tenantId: string, id: string): Promise<Notification> {
    requireUuid(id, 'id');
    let current = await store.get(tenantId, id);
    if (current === null) throw new NotFoundError(`notification ${id}`);
    if (current.status === 'SCHEDULED') {
      const reason =
        deps.preferences === null
          ? undefined
          : (await optOuts(deps.preferences, [current])).get(id);
      if (reason !== undefined) {
        const [suppressed] = await store.suppressScheduled([
          { id, version: current.version, reason },
        ]);
        if (suppressed !== undefined) {
          events.publish(eventOf(suppressed, null, reason));
          return suppressed;
        }
      } else {
        const released = await store.deliverNow(tenantId, id);
        if (released !== null) {
          events.publish(eventOf(released, null, null));
          dispatchInBackground([released]);
          return released;
        }
      }
      // It changed meanwhile (released, cancelled): answer by its new state.
      current = await store.get(tenantId, id);
      if (current === null) throw new NotFoundError(`notification ${id}`);
    }
    if (['PENDING', 'PROCESSING', 'RETRYING', 'DELIVERED'].includes(current.status)) {
      return current;
    }
    throw new FailedPreconditionError(
      `notification ${id} is ${current.status}; only a SCHEDULED notification can be delivered now`,
    );
  }

  async function cancel(tenantId: string, id: string): Promise<Notification> {
    requireUuid(id, 'id');
    const cancelled = await store.cancel(tenantId, id);
    if (cancelled !== null) {
      events.publish(eventOf(cancelled, null, null));
      return cancelled;
    }
    const current = await store.get(tenantId, id);
    if (current === null) throw new NotFoundError(`notification ${id}`);
    if (current.status === 'CANCELLED') return current;
    throw new FailedPreconditionError(
      `notification ${id} is ${current.status}; only PENDING, SCHEDULED or RETRYING ones can be cancelled`,
    );
  }

  /**
   * Streams states: subscribes first, then reads the current state, then forwards live changes,
   * dropping stale versions and filling any gap from the stored history, so nothing is missed or
   * reordered.
   */
  async function* watch(
    tenantId: string,
    target: WatchTarget,
    signal: AbortSignal,
  ): AsyncGenerator<StatusEvent> {
    validateWatch(target);
    const wanted = target.statuses && target.statuses.length > 0 ? new Set(target.statuses) : null;
    const matches = (s: StatusEvent) => wanted === null || wanted.has(s.notification.status);
    const sub = events.subscribe(
      'notificationId' in target
        ? { tenantId, notificationId: target.notificationId }
        : { tenantId, userId: target.userId },
    );
    const stop = () => sub.close();
    signal.addEventListener('abort', stop, { once: true });
    try {
      await sub.ready;
      // Notifications created after this moment are new to the watcher: all of their states are
      // due, from version 1 (a second of slack covers clocks that disagree a little).
      const liveSince = now().getTime() - 1_000;
      // The latest version seen of each notification, the oldest forgotten first past
      // watchMemory. One missing from it is new to the watcher (every state due) only if it
      // cannot have been forgotten: ids are UUIDv7, ordered by creation time, so one created
      // after every forgotten one. Else it is taken as seen up to its previous version, so a
      // forgotten notification's next change never replays its history a second time.
      const seen = new Map<string, number>();
      let forgotten = '';
      const initial: StatusEvent[] = [];
      if ('notificationId' in target) {
        const n = await store.get(tenantId, target.notificationId);
        if (n === null) throw new NotFoundError(`notification ${target.notificationId}`);
        if (target.afterVersion !== null) {
          initial.push(...(await statesAfter(tenantId, n, target.afterVersion)));
          seen.set(n.id, Math.max(target.afterVersion, n.version));
        } else {
          initial.push(await currentState(tenantId, n));
          seen.set(n.id, n.version);
        }
      } else if (target.initialCount > 0) {
        const latest = await store.list(tenantId, {
          userId: target.userId,
          statuses: [],
          channels: [],
          createdAfter: null,
          createdBefore: null,
          before: null,
          limit: target.initialCount,
        });
        for (const n of latest.reverse()) {
          initial.push(await currentState(tenantId, n));
          seen.set(n.id, n.version);
        }
      }
      for (const state of initial) if (matches(state)) yield state;
      for await (const live of sub) {
        const id = live.notification.id;
        const isNew = live.notification.createdAt.getTime() >= liveSince && id > forgotten;
        const last = seen.get(id) ?? (isNew ? 0 : live.notification.version - 1);
        if (live.notification.version <= last) continue;
        if (live.notification.version > last + 1) {
          // A live event went missing (core NATS is best effort): replay it from the history.
          for (const state of await statesAfter(tenantId, live.notification, last)) {
            if (state.event.version < live.notification.version && matches(state)) yield state;
          }
        }
        seen.set(id, live.notification.version);
        if (seen.size > watchMemory) {
          const oldest = seen.keys().next().value as string;
          seen.delete(oldest);
          if (oldest > forgotten) forgotten = oldest;
        }
        if (matches(live)) yield live;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      sub.close();
    }
  }

  /**
   * The states after `afterVersion`, from the stored history. An in-app notification's inbox
   * fields are replayed from its whole history (each inbox change's time is the value it set), so
   * every state shows them as they were then.
   */
  async function statesAfter(
    tenantId: string,
    n: Notification,
    afterVersion: number,
  ): Promise<StatusEvent[]> {
    if (n.channel !== 'in_app') {
      return (await store.history(tenantId, n.id, afterVersion)).map((e) => stateAt(n, e));
    }
    const states: StatusEvent[] = [];
    let inbox: InboxState = { seenAt: null, readAt: null, archivedAt: null };
    for (const e of await store.history(tenantId, n.id)) {
      if (e.inboxChange) inbox = applyInboxChange(inbox, e.inboxChange, e.time);
      if (e.version <= afterVersion) continue;
      const state = stateAt(n, e);
      states.push({ ...state, notification: { ...state.notification, ...inbox } });
    }
    return states;
  }

  async function currentState(tenantId: string, n: Notification): Promise<StatusEvent> {
    const history = await store.history(tenantId, n.id, n.version - 1);
    const latest = history.at(-1);
    return latest ? stateAt(n, latest) : eventOf(n, null, null);
  }

  /** Waits for background dispatches to finish and stamps what they published (graceful shutdown). */
  async function drain(): Promise<void> {
    await Promise.allSettled([...inFlight]);
    track(stampNow());
    await Promise.allSettled([...inFlight]);
  }

  /**
   * Sends each item as a Send of its own (see batch.ts); `toInput` maps an item inside its own
   * Send, so even a mapping error is that item's result.
   */
  function sendEach<T>(
    tenantId: string,
    items: readonly T[],
    toInput: (item: T) => SendInput,
    signal?: AbortSignal,
  ) {
    return sendBatch(items, (item) => send(tenantId, toInput(item)), signal);
  }

  /** Counts by channel and status of the tenant's notifications created in a window. */
  function stats(tenantId: string, input: StatsInput, known: readonly FieldViolation[] = []) {
    return countStats(store, tenantId, input, now(), known);
  }

  return {
    send,
    sendBatch: sendEach,
    get,
    list,
    cancel,
    deliverNow,
    watch,
    stats,
    dispatch,
    drain,
  };
}

/**
 * The opt-outs (by notification id, with the reason) that scheduled notifications now fall under:
 * the accept-time decision made again, as a user may opt out while one waits. Quiet hours are not
 * recomputed: a deferral already ends outside the window.
 */
export async function optOuts(
  preferences: Pick<Preferences, 'forSend'>,
  rows: readonly Notification[],
): Promise<Map<string, string>> {
  const reads = new Map<string, ReturnType<Preferences['forSend']>>();
  const reasons = new Map<string, string>();
  await Promise.all(
    rows.map(async (n) => {
      const key = `${n.tenantId}\u0000${n.userId}`;
      let read = reads.get(key);
      if (read === undefined) reads.set(key, (read = preferences.forSend(n.tenantId, n.userId)));
      const prefs = await read;
      const d = decide(n.channel, n.category, prefs.user?.rules ?? [], prefs.tenant);
      if (!d.deliver) reasons.set(n.id, d.reason);
    }),
  );
  return reasons;
}

/** The job that delivers a notification's current generation. */
export function jobOf(n: Notification): Job {
  return {
    id: n.id,
    tenantId: n.tenantId,
    channel: n.channel,
    lane: n.priority,
    generation: n.generation,
  };
}

/** The status event for a notification's current state. */
export function eventOf(
  n: Notification,
  provider: string | null,
  error: string | null,
): StatusEvent {
  return {
    notification: n,
    event: {
      notificationId: n.id,
      version: n.version,
      status: n.status,
      attempt: n.attempt,
      provider,
      error,
      generation: n.generation,
      time: n.updatedAt,
    },
  };
}

/** The notification as it was at a history event (for replays and gap fills). */
function stateAt(n: Notification, e: NotificationEvent): StatusEvent {
  return {
    notification: {
      ...n,
      status: e.status,
      version: e.version,
      attempt: e.attempt,
      generation: e.generation,
      updatedAt: e.time,
    },
    event: e,
  };
}

function newNotification(
  tenantId: string,
  cmd: SendCommand,
  at: Date,
  template: PinnedTemplate | null,
): Notification {
  return {
    id: uuidv7(at.getTime()),
    tenantId,
    userId: cmd.userId,
    channel: cmd.channel,
    priority: cmd.priority,
    category: cmd.category,
    content: cmd.content,
    to: cmd.to,
    idempotencyKey: cmd.idempotencyKey,
    correlationId: cmd.correlationId,
    metadata: cmd.metadata,
    status: cmd.sendAt === null ? 'PENDING' : 'SCHEDULED',
    attempt: 0,
    attemptFloor: 0,
    version: 1,
    generation: 1,
    sendAt: cmd.sendAt,
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
    template,
    statusReason: null,
    seenAt: null,
    readAt: null,
    archivedAt: null,
  };
}

/** What is wrong with `id` as a UUID field, or null. */
function uuidProblem(id: string): string | null {
  if (id === '') return 'is required';
  return isUuid(id) ? null : 'must be a UUID';
}

/** Throws ValidationError naming `field` unless `id` is a UUID. */
export function requireUuid(id: string, field: string): void {
  const problem = uuidProblem(id);
  if (problem !== null) throw new ValidationError([{ field, description: problem }]);
}

/**
 * Throws ValidationError naming every bad field of a watch: the target's own and `known`, those
 * the caller already found in the request (see server/mapping.ts). Null: the request named no
 * target (its violation is among `known`).
 */
export function validateWatch(
  target: WatchTarget | null,
  known: readonly FieldViolation[] = [],
): asserts target is WatchTarget {
  const v: FieldViolation[] = [...known];
  const add = (field: string, description: string) => v.push({ field, description });
  if (target === null) {
    if (v.length === 0) add('target', 'notification_id or user_id is required');
  } else if ('notificationId' in target) {
    const problem = uuidProblem(target.notificationId);
    if (problem !== null) add('notification_id', problem);
    if (target.afterVersion !== null && target.afterVersion < 0)
      add('after_version', 'must be at least 0');
  } else {
    validateUserId(target.userId, add);
    if (target.initialCount < 0 || target.initialCount > WATCH_INITIAL_MAX)
      add('initial_count', `must be 0 to ${WATCH_INITIAL_MAX}`);
  }
  if (v.length > 0) throw new ValidationError(v);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
