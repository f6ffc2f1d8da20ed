/**
 * What the domain needs from the outside world. infra/ and providers/ implement these; tests use
 * the real implementations against real services.
 */
import type { Channel, Lane, Notification, NotificationEvent, Status } from './notification.js';
import type { StatusEvent } from './status-event.js';

/** Minimal structured logger (pino-compatible). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ListQuery {
  userId: string | null;
  statuses: readonly Status[];
  channels: readonly Channel[];
  createdAfter: Date | null;
  createdBefore: Date | null;
  /** Keyset position: rows strictly older than this (createdAt, id) pair. */
  before: { createdAt: Date; id: string } | null;
  limit: number;
}

export interface StatsQuery {
  createdAfter: Date;
  createdBefore: Date;
  channels: readonly Channel[];
}

export type InsertResult =
  | { created: true; notification: Notification }
  /** The idempotency key was taken: the existing row and the hash of the request that made it. */
  | { created: false; notification: Notification; requestHash: string | null };

export type ClaimResult =
  | { claimed: true; notification: Notification }
  /** Someone else holds it, it moved on, or the job is stale; `current` is the row now (if any). */
  | { claimed: false; current: Notification | null };

export interface AttemptOutcome {
  status: 'DELIVERED' | 'RETRYING' | 'FAILED';
  provider: string | null;
  providerMessageId: string | null;
  error: string | null;
  nextAttemptAt: Date | null;
  /** False when no provider was called (every circuit open): not charged to the retry budget. */
  counted?: boolean;
}

export interface DeadLetterQuery {
  ids: readonly string[] | null;
  channels: readonly Channel[];
  /** Case-insensitive substring of the last error. */
  errorContains: string | null;
  /** Dead-lettered at or after. */
  after: Date | null;
  /** Dead-lettered before. */
  before: Date | null;
  /** Keyset position: rows strictly older than this pair. */
  cursor: { deadLetteredAt: Date; id: string } | null;
  limit: number;
}

export type MaxDeliveredResult =
  | { action: 'failed' | 'revived'; notification: Notification }
  | { action: 'none'; notification: null };

/** The source of truth. Every update is conditional on the state it expects. */
export interface NotificationStore {
  /** Inserts a notification with its first history event, in one statement. */
  insert(notification: Notification, requestHash: string | null): Promise<InsertResult>;
  get(tenantId: string, id: string): Promise<Notification | null>;
  /** The notification holding an idempotency key, with the hash of the request that made it. */
  byIdempotencyKey(
    tenantId: string,
    key: string,
  ): Promise<{ notification: Notification; requestHash: string | null } | null>;
  /** History events with version > afterVersion, oldest first. */
  history(tenantId: string, id: string, afterVersion?: number): Promise<NotificationEvent[]>;
  /** Newest first (createdAt desc, id desc). */
  list(tenantId: string, query: ListQuery): Promise<Notification[]>;
  /** PENDING | SCHEDULED | RETRYING -> CANCELLED. Null when the row was in none of those. */
  cancel(tenantId: string, id: string): Promise<Notification | null>;
  /**
   * SCHEDULED -> PENDING now (send_at now, unpublished, status_reason cleared), whatever its
   * send_at. Null when the row was not SCHEDULED.
   */
  deliverNow(tenantId: string, id: string): Promise<Notification | null>;
  /**
   * Stamps published_at on rows a publish of `generation` reached the queue for, unless already
   * stamped: a worker's claim stamps the row it claims, so by the time the api stamps the rows it
   * published (a while later, see createNotifications) most need no write.
   */
  markPublished(jobs: readonly { id: string; generation: number }[]): Promise<void>;
  /**
   * PENDING | RETRYING | PROCESSING-with-an-expired-lease -> PROCESSING, for a job of the row's
   * generation or an older one (an older job still in the queue is as good as the republished
   * one: whichever a worker reaches first delivers, the other finds the claim taken): attempt + 1
   * (the fencing token for every later write), a lease until now + leaseMs.
   */
  claim(id: string, generation: number, leaseMs: number): Promise<ClaimResult>;
  /**
   * As claim, but straight to DELIVERED by `provider` (no lease): for an inline provider, whose
   * delivery is this update itself (in_app). `notification` is the delivered row.
   */
  deliverInline(id: string, generation: number, provider: string): Promise<ClaimResult>;
  /** PROCESSING at exactly `attempt` -> the outcome's status. Null when the claim was lost. */
  complete(id: string, attempt: number, outcome: AttemptOutcome): Promise<Notification | null>;
  /** Lease extension while a slow provider call runs; false when the claim was lost. */
  extendLease(id: string, attempt: number, leaseMs: number): Promise<boolean>;
  /** PENDING or RETRYING rows never published (or whose publish is unconfirmed) since before `olderThan`. */
  unpublished(olderThan: Date, limit: number): Promise<Notification[]>;
  /** SCHEDULED rows due at `now`, earliest first, unchanged (to be checked before release). */
  dueScheduled(now: Date, limit: number): Promise<Notification[]>;
  /**
   * SCHEDULED rows due at `now` -> PENDING (unpublished, status_reason cleared), returned; only
   * those in `ids` when given.
   */
  releaseDue(now: Date, limit: number, ids?: readonly string[]): Promise<Notification[]>;
  /**
   * SCHEDULED rows still at `version` -> SUPPRESSED with `reason` (an opt-out made after they
   * were accepted); returned. A row that changed meanwhile is left alone.
   */
  suppressScheduled(
    rows: readonly { id: string; version: number; reason: string }[],
  ): Promise<Notification[]>;
  /**
   * PROCESSING rows whose lease expired -> RETRYING under a new generation (unpublished), or
   * FAILED (dead-lettered) when that was the last attempt of `maxAttempts`; returned.
   */
  reclaimExpired(now: Date, limit: number, maxAttempts: number): Promise<Notification[]>;
  /**
   * The queue gave up on this notification's job (max deliveries). With its retry budget spent it
   * fails (dead-lettered); with budget left and waiting for a worker it gets a new generation,
   * unpublished; otherwise (a worker holds it, or it is done) nothing changes.
   */
  settleMaxDelivered(id: string, maxAttempts: number): Promise<MaxDeliveredResult>;
  /** Dead letters (FAILED, not purged), newest first. */
  deadLetters(tenantId: string, query: DeadLetterQuery): Promise<Notification[]>;
  /**
   * Dead letters (FAILED, not purged) -> PENDING under a new generation with a fresh retry budget
   * (unpublished), returned. Other rows are left alone, so replaying twice replays once.
   */
  replay(tenantId: string, ids: readonly string[]): Promise<Notification[]>;
  /** Takes FAILED rows off the dead-letter list (they stay FAILED); the rows taken, returned. */
  purgeDeadLetters(tenantId: string, ids: readonly string[]): Promise<Notification[]>;
  /**
   * PENDING or RETRYING rows last published (and, if retrying, due) before `olderThan`, that no
   * worker has picked up since: the queue lost or gave up on their message. They get a new
   * generation and become unpublished, so the outbox publishes them again; returned.
   */
  reviveStale(olderThan: Date, limit: number): Promise<Notification[]>;
  /**
   * Forgets the idempotency keys (and request hashes) of notifications created before
   * `olderThan`, so the keys may be used again; returns how many.
   */
  expireIdempotencyKeys(olderThan: Date, limit: number): Promise<number>;
  /**
   * How many of the tenant's notifications created in [createdAfter, createdBefore) (on these
   * channels; empty means all) are in each status, per channel: pairs with none are left out.
   * Reads only an index covering the window.
   */
  countByChannelAndStatus(
    tenantId: string,
    query: StatsQuery,
  ): Promise<{ channel: Channel; status: Status; count: number }[]>;
}

/** A message on a channel's work queue: "deliver this notification, generation N". */
export interface Job {
  id: string;
  tenantId: string;
  channel: Channel;
  lane: Lane;
  generation: number;
}

export interface JobQueue {
  /** Resolves once the queue has stored the job (deduplicated by id and generation). */
  publish(job: Job): Promise<void>;
}

export interface StatusSubscription extends AsyncIterable<StatusEvent> {
  /** Resolves once the subscription is live on the broker. */
  readonly ready: Promise<void>;
  close(): void;
}

/** Live status changes: best effort, ordered per notification by version. */
export interface StatusEvents {
  publish(event: StatusEvent): void;
  subscribe(filter: {
    tenantId: string;
    userId?: string;
    notificationId?: string;
  }): StatusSubscription;
}

export interface DeliveryResult {
  providerMessageId?: string;
}

/**
 * A delivery provider for one channel. Throws TransientDeliveryError / PermanentDeliveryError;
 * anything else counts as transient. Must stop work when `signal` aborts (the attempt timed out).
 */
export interface Provider {
  readonly name: string;
  /**
   * True when delivering is the notification's own update (in_app: the stored row is the inbox
   * item): nothing is called and nothing can fail, so the worker marks it DELIVERED as it claims
   * it, in one statement, with no PROCESSING step. `deliver` is then never called.
   */
  readonly inline?: boolean;
  deliver(notification: Notification, signal: AbortSignal): Promise<DeliveryResult>;
  /** Releases pooled connections; called once at shutdown. */
  close?(): Promise<void>;
}

/** Where a dead-lettered job came from on the work queue, when known. */
export interface DeadLetterOrigin {
  subject: string;
  sequence: number;
}

/**
 * Copies of dead letters on the queue side (the dead-letter stream), for operators' tools. The
 * record is the FAILED row in the store; a copy that fails to write is logged, not retried.
 */
export interface DeadLetterSink {
  add(notification: Notification, origin: DeadLetterOrigin | null): Promise<void>;
  /** Drops the copies of these notifications (replayed or purged). */
  remove(notifications: readonly Pick<Notification, 'id' | 'channel'>[]): Promise<void>;
}
