/**
 * NotificationStore on PostgreSQL. Every write is one statement (a writable CTE updates the row
 * and appends its history event together), conditional on the state it expects, and concurrent
 * calls are batched into multi-row statements.
 */
import type pg from 'pg';
import {
  statusesLeadingTo,
  type Channel,
  type Content,
  type InboxChange,
  type Notification,
  type NotificationEvent,
  type PinnedTemplate,
  type Priority,
  type Status,
} from '../../domain/notification.js';
import type {
  AttemptOutcome,
  ClaimResult,
  InsertResult,
  ListQuery,
  NotificationStore,
} from '../../domain/ports.js';
import { createBatcher } from './batcher.js';
import { queryStats } from './notification-stats.js';
import { date, json, maybeDate } from './columns.js';

export interface NotificationStoreOptions {
  /** Largest multi-row statement. */
  batchSize?: number;
  /**
   * Statements of one kind in flight at once. One (the default) batches the most: whatever
   * arrives while a statement runs goes into the next one, so batches grow with the load and
   * PostgreSQL does one statement per batch instead of one per row.
   */
  concurrency?: number;
}

/** Every column of notification, in the order `Row` names them (other stores select them too). */
export const COLUMNS = `id, tenant_id, user_id, channel, priority, category, content, "to", idempotency_key,
  request_hash, correlation_id, metadata, status, attempt, version, generation, send_at, created_at,
  updated_at, delivered_at, next_attempt_at, lease_until, published_at, provider,
  provider_message_id, last_error, attempt_floor, dead_lettered_at, template, status_reason, seen_at,
  read_at, archived_at`;

/** The statuses a claim or a cancel may start from: the domain's transition table decides. */
const CLAIMABLE = statusesLeadingTo('PROCESSING');
const CANCELLABLE = statusesLeadingTo('CANCELLED');

/**
 * Appends one history event per row returned by the CTE named `changed` (which must return
 * `ev_provider` and `ev_error`); `inboxChange` is the SQL of the event's inbox change, if any.
 */
export function appendEvents(inboxChange = 'null::text'): string {
  return `ev as (
  insert into notification_event (notification_id, version, status, attempt, provider, error,
    generation, time, inbox_change)
  select id, version, status, attempt, ev_provider, ev_error, generation, updated_at, ${inboxChange}
  from changed)`;
}
const APPEND_EVENTS = appendEvents();

/** A notification row as pg returns it; `toNotification` maps it. */
export interface Row {
  id: string;
  tenant_id: string;
  user_id: string;
  channel: string;
  priority: string;
  category: string | null;
  content: Content | string;
  to: string | null;
  idempotency_key: string | null;
  request_hash: string | null;
  correlation_id: string | null;
  metadata: Record<string, string> | string;
  status: string;
  attempt: number;
  version: number;
  generation: number;
  send_at: Date | string | null;
  created_at: Date | string;
  updated_at: Date | string;
  delivered_at: Date | string | null;
  next_attempt_at: Date | string | null;
  lease_until: Date | string | null;
  published_at: Date | string | null;
  provider: string | null;
  provider_message_id: string | null;
  last_error: string | null;
  attempt_floor: number;
  dead_lettered_at: Date | string | null;
  template: PinnedTemplate | string | null;
  status_reason: string | null;
  seen_at: Date | string | null;
  read_at: Date | string | null;
  archived_at: Date | string | null;
}

interface EventRow {
  notification_id: string;
  version: number;
  status: string;
  attempt: number;
  provider: string | null;
  error: string | null;
  generation: number;
  time: Date | string;
  inbox_change: string | null;
}

export function createNotificationStore(
  pool: pg.Pool,
  options: NotificationStoreOptions = {},
): NotificationStore {
  const batch = { maxSize: options.batchSize ?? 200, maxConcurrent: options.concurrency ?? 1 };
  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    (await pool.query<R>(text, values)).rows;
  /**
   * A fixed statement run often: prepared once per connection, so PostgreSQL parses it once (and
   * plans each execution for the table's current size: SESSION_OPTIONS in orm.ts).
   */
  const prepared = async <R extends pg.QueryResultRow>(
    name: string,
    text: string,
    values: unknown[],
  ) => (await pool.query<R>({ name: `herald_${name}`, text, values })).rows;

  const insertOne = createBatcher<{ n: Notification; hash: string | null }, boolean>(
    async (items) => {
      const n = items.map((i) => i.n);
      const rows = await prepared<{ ord: number }>(
        'insert',
        `with input as (
           select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::text[],
             $12::jsonb[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::jsonb[],
             $17::text[])
             with ordinality as t(id, tenant_id, user_id, channel, priority, category, content, "to",
               idempotency_key, request_hash, correlation_id, metadata, status, send_at, created_at,
               template, status_reason, ord)
         ),
         changed as (
           insert into notification (id, tenant_id, user_id, channel, priority, category, content,
             "to", idempotency_key, request_hash, correlation_id, metadata, status, attempt, version,
             generation, send_at, created_at, updated_at, template, status_reason)
           select id, tenant_id, user_id, channel, priority, category, content, "to",
             idempotency_key, request_hash, correlation_id, metadata, status, 0, 1, 1, send_at,
             created_at, created_at, template, status_reason
           from input order by ord
           on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
           returning id, version, status, attempt, generation, updated_at,
             null::text as ev_provider, status_reason as ev_error
         ),
         ${APPEND_EVENTS}
         select input.ord from changed join input using (id)`,
        [
          n.map((x) => x.id),
          n.map((x) => x.tenantId),
          n.map((x) => x.userId),
          n.map((x) => x.channel),
          n.map((x) => x.priority),
          n.map((x) => x.category),
          n.map((x) => JSON.stringify(x.content)),
          n.map((x) => x.to),
          n.map((x) => x.idempotencyKey),
          items.map((i) => i.hash),
          n.map((x) => x.correlationId),
          n.map((x) => JSON.stringify(x.metadata)),
          n.map((x) => x.status),
          n.map((x) => x.sendAt),
          n.map((x) => x.createdAt),
          n.map((x) => (x.template === null ? null : JSON.stringify(x.template))),
          n.map((x) => x.statusReason),
        ],
      );
      // Only rows that were inserted come back: the others lost an idempotency-key conflict.
      const inserted = new Set(rows.map((r) => Number(r.ord)));
      return items.map((_, i) => inserted.has(i + 1));
    },
    batch,
  );

  /**
   * Claims rows for jobs: PENDING | RETRYING | PROCESSING-with-an-expired-lease, of the job's
   * generation or newer, take a new attempt and `set`'s status. The claim stamps published_at: a
   * job a worker holds was published (see markPublished).
   */
  const claimBatcher = (name: string, set: string) =>
    createBatcher<
      { id: string; generation: number; leaseMs: number; provider: string | null },
      Row | null
    >(async (items) => {
      const rows = await prepared<Row>(
        name,
        `with input as (
             select * from unnest($1::uuid[], $2::int[], $3::float8[], $4::text[])
               as t(id, generation, lease_ms, provider)
           ),
           changed as (
             update notification n set ${set}, attempt = n.attempt + 1,
               version = n.version + 1, updated_at = now(),
               published_at = coalesce(n.published_at, now())
             from input i
             where n.id = i.id and n.generation >= i.generation
               and (n.status = any($5::text[])
                    or (n.status = 'PROCESSING' and n.lease_until < now()))
             returning ${qualified('n')}, i.provider as ev_provider, null::text as ev_error
           ),
           ${APPEND_EVENTS}
           select * from changed`,
        [
          items.map((i) => i.id),
          items.map((i) => i.generation),
          items.map((i) => i.leaseMs),
          items.map((i) => i.provider),
          CLAIMABLE,
        ],
      );
      return matchById(items, rows);
    }, batch);

  const claimOne = claimBatcher(
    'claim',
    `status = 'PROCESSING', lease_until = now() + make_interval(secs => i.lease_ms / 1000)`,
  );
  // Milliseconds in delivered_at, as the inbox's page tokens carry it (migration-20261121-inbox).
  const DELIVERED_NOW = `date_trunc('milliseconds', now())`;
  const deliverInlineOne = claimBatcher(
    'deliver_inline',
    `status = 'DELIVERED', lease_until = null, next_attempt_at = null, dead_lettered_at = null,
     delivered_at = ${DELIVERED_NOW}, provider = i.provider`,
  );

  const completeOne = createBatcher<{ id: string; attempt: number; o: AttemptOutcome }, Row | null>(
    async (items) => {
      const rows = await prepared<Row>(
        'complete',
        `with input as (
           select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::timestamptz[], $8::int[])
             as t(id, attempt, status, provider, provider_message_id, error, next_attempt_at,
               uncounted)
         ),
         changed as (
           update notification n set status = i.status, version = n.version + 1,
             updated_at = now(), lease_until = null, next_attempt_at = i.next_attempt_at,
             delivered_at = case when i.status = 'DELIVERED' then ${DELIVERED_NOW}
               else n.delivered_at end,
             provider = coalesce(i.provider, n.provider),
             provider_message_id = coalesce(i.provider_message_id, n.provider_message_id),
             last_error = coalesce(i.error, n.last_error),
             attempt_floor = n.attempt_floor + i.uncounted,
             dead_lettered_at = case when i.status = 'FAILED' then now() else null end
           from input i
           where n.id = i.id and n.status = 'PROCESSING' and n.attempt = i.attempt
           returning ${qualified('n')}, i.provider as ev_provider, i.error as ev_error
         ),
         ${APPEND_EVENTS}
         select * from changed`,
        [
          items.map((i) => i.id),
          items.map((i) => i.attempt),
          items.map((i) => i.o.status),
          items.map((i) => i.o.provider),
          items.map((i) => i.o.providerMessageId),
          items.map((i) => i.o.error),
          items.map((i) => i.o.nextAttemptAt),
          items.map((i) => (i.o.counted === false ? 1 : 0)),
        ],
      );
      return matchById(items, rows);
    },
    batch,
  );

  const publishedOne = createBatcher<{ id: string; generation: number }, null>(async (items) => {
    await prepared(
      'published',
      `update notification n set published_at = now()
       from unnest($1::uuid[], $2::int[]) as t(id, generation)
       where n.id = t.id and n.generation = t.generation and n.published_at is null`,
      [items.map((i) => i.id), items.map((i) => i.generation)],
    );
    return items.map(() => null);
  }, batch);

  async function claimed(id: string, row: Row | null): Promise<ClaimResult> {
    if (row !== null) return { claimed: true, notification: toNotification(row) };
    return { claimed: false, current: await getById(id) };
  }

  async function byIdempotencyKey(tenantId: string, key: string | null) {
    if (key === null) return null;
    const rows = await prepared<Row>(
      'by_idempotency_key',
      `select ${COLUMNS} from notification where tenant_id = $1 and idempotency_key = $2`,
      [tenantId, key],
    );
    const first = rows[0];
    return first ? { notification: toNotification(first), requestHash: first.request_hash } : null;
  }

  async function getById(id: string): Promise<Notification | null> {
    const rows = await prepared<Row>(
      'get_by_id',
      `select ${COLUMNS} from notification where id = $1`,
      [id],
    );
    return rows[0] ? toNotification(rows[0]) : null;
  }

  /**
   * One page of a tenant's rows, newest first by `column` then id, strictly after `cursor`;
   * `filter` adds conditions, binding values with `param`.
   */
  async function keysetPage(
    tenantId: string,
    column: 'created_at' | 'dead_lettered_at',
    cursor: { at: Date; id: string } | null,
    limit: number,
    filter: (where: string[], param: (v: unknown) => string) => void,
  ): Promise<Notification[]> {
    const values: unknown[] = [tenantId];
    const where = ['tenant_id = $1'];
    const param = (v: unknown) => {
      values.push(v);
      return `$${values.length}`;
    };
    filter(where, param);
    if (cursor !== null) {
      where.push(`(${column}, id) < (${param(cursor.at)}, ${param(cursor.id)}::uuid)`);
    }
    const rows = await query<Row>(
      `select ${COLUMNS} from notification where ${where.join(' and ')}
       order by ${column} desc, id desc limit ${param(limit)}`,
      values,
    );
    return rows.map(toNotification);
  }

  /** Moves rows selected by `where` (locked, skipping rows others hold) to a new state. */
  async function sweep(where: string, set: string, error: string | null, values: unknown[]) {
    const rows = await query<Row>(
      `with picked as (
         select id from notification where ${where} for update skip locked
       ),
       changed as (
         update notification n set ${set}, version = n.version + 1, updated_at = now()
         from picked where n.id = picked.id
         returning ${qualified('n')}, null::text as ev_provider, $${values.length + 1}::text as ev_error
       ),
       ${APPEND_EVENTS}
       select * from changed`,
      [...values, error],
    );
    return rows.map(toNotification);
  }

  return {
    async insert(notification, requestHash): Promise<InsertResult> {
      if (await insertOne({ n: notification, hash: requestHash })) {
        return { created: true, notification };
      }
      const existing = await byIdempotencyKey(notification.tenantId, notification.idempotencyKey);
      if (existing === null) {
        throw new Error('insert conflicted but no row holds the idempotency key');
      }
      return { created: false, ...existing };
    },

    byIdempotencyKey,

    async get(tenantId, id) {
      const rows = await prepared<Row>(
        'get',
        `select ${COLUMNS} from notification where tenant_id = $1 and id = $2`,
        [tenantId, id],
      );
      return rows[0] ? toNotification(rows[0]) : null;
    },

    async history(tenantId, id, afterVersion = 0) {
      const rows = await prepared<EventRow>(
        'history',
        `select e.* from notification_event e join notification n on n.id = e.notification_id
         where n.tenant_id = $1 and e.notification_id = $2 and e.version > $3
         order by e.version`,
        [tenantId, id, afterVersion],
      );
      return rows.map(toEvent);
    },

    list(tenantId, q: ListQuery) {
      const cursor = q.before && { at: q.before.createdAt, id: q.before.id };
      return keysetPage(tenantId, 'created_at', cursor, q.limit, (where, param) => {
        if (q.userId !== null) where.push(`user_id = ${param(q.userId)}`);
        if (q.statuses.length > 0) where.push(`status = any(${param(q.statuses)}::text[])`);
        if (q.channels.length > 0) where.push(`channel = any(${param(q.channels)}::text[])`);
        if (q.createdAfter !== null) where.push(`created_at >= ${param(q.createdAfter)}`);
        if (q.createdBefore !== null) where.push(`created_at < ${param(q.createdBefore)}`);
      });
    },

    async cancel(tenantId, id) {
      const rows = await query<Row>(
        `with changed as (
           update notification n set status = 'CANCELLED', version = n.version + 1,
             updated_at = now(), next_attempt_at = null
           where n.tenant_id = $1 and n.id = $2 and n.status = any($3::text[])
           returning ${qualified('n')}, null::text as ev_provider, null::text as ev_error
         ),
         ${APPEND_EVENTS}
         select * from changed`,
        [tenantId, id, CANCELLABLE],
      );
      return rows[0] ? toNotification(rows[0]) : null;
    },

    async deliverNow(tenantId, id) {
      const rows = await query<Row>(
        `with changed as (
           update notification n set status = 'PENDING', version = n.version + 1,
             updated_at = now(), send_at = now(), published_at = null, status_reason = null
           where n.tenant_id = $1 and n.id = $2 and n.status = 'SCHEDULED'
           returning ${qualified('n')}, null::text as ev_provider, null::text as ev_error
         ),
         ${APPEND_EVENTS}
         select * from changed`,
        [tenantId, id],
      );
      return rows[0] ? toNotification(rows[0]) : null;
    },

    async markPublished(jobs) {
      await Promise.all(jobs.map((j) => publishedOne(j)));
    },

    async claim(id, generation, leaseMs): Promise<ClaimResult> {
      return claimed(id, await claimOne({ id, generation, leaseMs, provider: null }));
    },

    async deliverInline(id, generation, provider): Promise<ClaimResult> {
      return claimed(id, await deliverInlineOne({ id, generation, leaseMs: 0, provider }));
    },

    async complete(id, attempt, outcome) {
      const row = await completeOne({ id, attempt, o: outcome });
      return row === null ? null : toNotification(row);
    },

    async extendLease(id, attempt, leaseMs) {
      const rows = await query(
        `update notification set lease_until = now() + make_interval(secs => $3::float8 / 1000)
         where id = $1 and attempt = $2 and status = 'PROCESSING' returning id`,
        [id, attempt, leaseMs],
      );
      return rows.length > 0;
    },

    async unpublished(olderThan, limit) {
      const rows = await query<Row>(
        `select ${COLUMNS} from notification
         where published_at is null and status in ('PENDING', 'RETRYING') and updated_at < $1
         order by updated_at limit $2`,
        [olderThan, limit],
      );
      return rows.map(toNotification);
    },

    async dueScheduled(now, limit) {
      const rows = await query<Row>(
        `select ${COLUMNS} from notification
         where status = 'SCHEDULED' and send_at <= $1 order by send_at limit $2`,
        [now, limit],
      );
      return rows.map(toNotification);
    },

    releaseDue(now, limit, ids) {
      // The deferral's reason (quiet hours) stays in the SCHEDULED event; the row no longer waits.
      return sweep(
        `status = 'SCHEDULED' and send_at <= $1 ${ids === undefined ? '' : 'and id = any($3::uuid[])'}
         order by send_at limit $2`,
        `status = 'PENDING', published_at = null, status_reason = null`,
        null,
        ids === undefined ? [now, limit] : [now, limit, ids],
      );
    },

    async suppressScheduled(items) {
      if (items.length === 0) return [];
      const rows = await query<Row>(
        `with input as (
           select * from unnest($1::uuid[], $2::int[], $3::text[]) as t(id, version, reason)
         ),
         changed as (
           update notification n set status = 'SUPPRESSED', status_reason = i.reason,
             version = n.version + 1, updated_at = now()
           from input i
           where n.id = i.id and n.version = i.version and n.status = 'SCHEDULED'
           returning ${qualified('n')}, null::text as ev_provider, i.reason as ev_error
         ),
         ${APPEND_EVENTS}
         select * from changed`,
        [items.map((i) => i.id), items.map((i) => i.version), items.map((i) => i.reason)],
      );
      return rows.map(toNotification);
    },

    reclaimExpired(now, limit, maxAttempts) {
      // A worker that died on the last attempt the budget allows leaves a dead letter.
      const exhausted = `n.attempt - n.attempt_floor >= $3`;
      return sweep(
        `status = 'PROCESSING' and lease_until < $1 order by lease_until limit $2`,
        `status = case when ${exhausted} then 'FAILED' else 'RETRYING' end,
         dead_lettered_at = case when ${exhausted} then now() end,
         generation = n.generation + 1, published_at = null, lease_until = null,
         next_attempt_at = case when ${exhausted} then null else now() end,
         last_error = 'lease expired: worker lost'`,
        'lease expired: worker lost',
        [now, limit, maxAttempts],
      );
    },

    countByChannelAndStatus: (tenantId, q) => queryStats(pool, tenantId, q),

    async expireIdempotencyKeys(olderThan, limit) {
      const { rowCount } = await pool.query(
        `update notification set idempotency_key = null, request_hash = null
         where id in (
           select id from notification
           where idempotency_key is not null and created_at < $1
           order by created_at limit $2 for update skip locked)`,
        [olderThan, limit],
      );
      return rowCount ?? 0;
    },

    async settleMaxDelivered(id, maxAttempts) {
      const failed = await query<Row>(
        `with changed as (
           update notification n set status = 'FAILED', version = n.version + 1,
             updated_at = now(), dead_lettered_at = now(), lease_until = null,
             next_attempt_at = null, last_error = $3
           where n.id = $1 and n.attempt - n.attempt_floor >= $2
             and (n.status in ('PENDING', 'RETRYING')
                  or (n.status = 'PROCESSING' and n.lease_until < now()))
           returning ${qualified('n')}, null::text as ev_provider, $3::text as ev_error
         ),
         ${APPEND_EVENTS}
         select * from changed`,
        [id, maxAttempts, 'the queue gave up on it: max deliveries reached'],
      );
      if (failed[0]) return { action: 'failed', notification: toNotification(failed[0]) };
      // Budget left: the queue's copy is gone, so publish a new one (a delay, not a loss).
      const revived = await query<Row>(
        `update notification n set generation = n.generation + 1, published_at = null
         where n.id = $1 and n.status in ('PENDING', 'RETRYING')
         returning ${qualified('n')}`,
        [id],
      );
      if (revived[0]) return { action: 'revived', notification: toNotification(revived[0]) };
      return { action: 'none', notification: null };
    },

    deadLetters(tenantId, q) {
      const cursor = q.cursor && { at: q.cursor.deadLetteredAt, id: q.cursor.id };
      return keysetPage(tenantId, 'dead_lettered_at', cursor, q.limit, (where, param) => {
        where.push('dead_lettered_at is not null', `status = 'FAILED'`);
        if (q.ids !== null) where.push(`id = any(${param(q.ids)}::uuid[])`);
        if (q.channels.length > 0) where.push(`channel = any(${param(q.channels)}::text[])`);
        if (q.errorContains !== null) {
          where.push(`strpos(lower(last_error), lower(${param(q.errorContains)})) > 0`);
        }
        if (q.after !== null) where.push(`dead_lettered_at >= ${param(q.after)}`);
        if (q.before !== null) where.push(`dead_lettered_at < ${param(q.before)}`);
      });
    },

    async replay(tenantId, ids) {
      const rows = await query<Row>(
        `with changed as (
           update notification n set status = 'PENDING', version = n.version + 1,
             updated_at = now(), generation = n.generation + 1, attempt_floor = n.attempt,
             published_at = null, dead_lettered_at = null, next_attempt_at = null,
             lease_until = null
           where n.tenant_id = $1 and n.id = any($2::uuid[]) and n.status = 'FAILED'
             and n.dead_lettered_at is not null
           returning ${qualified('n')}, null::text as ev_provider, null::text as ev_error
         ),
         ${APPEND_EVENTS}
         select * from changed`,
        [tenantId, ids],
      );
      return rows.map(toNotification);
    },

    async purgeDeadLetters(tenantId, ids) {
      const rows = await query<Row>(
        `update notification set dead_lettered_at = null
         where tenant_id = $1 and id = any($2::uuid[]) and status = 'FAILED'
           and dead_lettered_at is not null
         returning ${COLUMNS}`,
        [tenantId, ids],
      );
      return rows.map(toNotification);
    },

    async reviveStale(olderThan, limit) {
      // Not a status change: no history event, no version bump. Staleness counts from the last
      // publish, so a revived row is not revived again until it has waited as long once more.
      const rows = await query<Row>(
        `update notification n set generation = n.generation + 1, published_at = null
         where n.id in (
           select id from notification
           where status in ('PENDING', 'RETRYING') and published_at < $1
             and (next_attempt_at is null or next_attempt_at < $1)
           order by updated_at limit $2 for update skip locked)
         returning ${qualified('n')}`,
        [olderThan, limit],
      );
      return rows.map(toNotification);
    },
  };
}

/** COLUMNS qualified by a table alias (for `returning` of an update joined to other tables). */
export function qualified(alias: string): string {
  return COLUMNS.split(',')
    .map((c) => `${alias}.${c.trim()}`)
    .join(', ');
}

function matchById<T extends { id: string }>(
  items: readonly T[],
  rows: readonly Row[],
): (Row | null)[] {
  const byId = new Map(rows.map((r) => [r.id, r]));
  // The same id twice in one batch is updated once; the first caller gets the row.
  return items.map((i) => {
    const r = byId.get(i.id) ?? null;
    byId.delete(i.id);
    return r;
  });
}

export function toNotification(r: Row): Notification {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    userId: r.user_id,
    channel: r.channel as Channel,
    priority: r.priority as Priority,
    category: r.category,
    content: json(r.content),
    to: r.to,
    idempotencyKey: r.idempotency_key,
    correlationId: r.correlation_id,
    metadata: json(r.metadata),
    status: r.status as Status,
    attempt: r.attempt,
    version: r.version,
    generation: r.generation,
    sendAt: maybeDate(r.send_at),
    createdAt: date(r.created_at),
    updatedAt: date(r.updated_at),
    deliveredAt: maybeDate(r.delivered_at),
    nextAttemptAt: maybeDate(r.next_attempt_at),
    leaseUntil: maybeDate(r.lease_until),
    publishedAt: maybeDate(r.published_at),
    provider: r.provider,
    providerMessageId: r.provider_message_id,
    lastError: r.last_error,
    attemptFloor: r.attempt_floor,
    deadLetteredAt: maybeDate(r.dead_lettered_at),
    template: r.template === null ? null : json(r.template),
    statusReason: r.status_reason,
    seenAt: maybeDate(r.seen_at),
    readAt: maybeDate(r.read_at),
    archivedAt: maybeDate(r.archived_at),
  };
}

function toEvent(r: EventRow): NotificationEvent {
  return {
    notificationId: r.notification_id,
    version: r.version,
    status: r.status as Status,
    attempt: r.attempt,
    provider: r.provider,
    error: r.error,
    generation: r.generation,
    time: date(r.time),
    inboxChange: r.inbox_change as InboxChange | null,
  };
}
