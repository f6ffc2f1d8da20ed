/**
 * The dead-letter use cases behind DeadLetterService: list, get, replay, purge. Dead letters are
 * FAILED notifications not yet replayed or purged; the store is their record, the sink holds the
 * queue-side copies. Replay and purge are idempotent: what is no longer a dead letter is skipped.
 */
import { NotFoundError, ValidationError, type FieldViolation } from './errors.js';
import { isUuid } from './ids.js';
import type { Channel, Notification, NotificationEvent } from './notification.js';
import { eventOf, PAGE_SIZE, requireUuid } from './notifications.js';
import { decodePageToken, pageOf } from './page-token.js';
import type {
  DeadLetterQuery,
  DeadLetterSink,
  Logger,
  NotificationStore,
  StatusEvents,
} from './ports.js';

export interface DeadLettersDeps {
  store: NotificationStore;
  /** Hands notifications to the queue and stamps them published (Notifications.dispatch). */
  dispatch: (rows: readonly Notification[]) => Promise<void>;
  sink: DeadLetterSink;
  events: StatusEvents;
  logger: Logger;
}

/** Which dead letters; every condition set must hold, and an empty filter selects them all. */
export interface DeadLetterFilter {
  channels: readonly Channel[];
  /** Case-insensitive substring of the last error; '' for any. */
  errorContains: string;
  /** Dead-lettered at or after. */
  after: Date | null;
  /** Dead-lettered before. */
  before: Date | null;
}

export interface ListDeadLettersInput {
  filter: DeadLetterFilter;
  pageSize: number;
  pageToken: string;
}

/** What a replay or purge acts on: exactly one of `ids` (non-empty) and `filter` (non-null). */
export interface DeadLetterSelection {
  ids: readonly string[];
  filter: DeadLetterFilter | null;
}

export interface BulkResult {
  /** The notifications this call acted on; selected ones that were no dead letters are left out. */
  ids: string[];
  /** True when a filter selected more than one call acts on; calling again continues. */
  more: boolean;
}

export const DEAD_LETTER_LIMITS = {
  /** Ids one replay or purge request may name. */
  ids: 1_000,
  /** Dead letters one replay or purge by filter acts on; `more` says when there are others. */
  perCall: 10_000,
  /** Rows a replay or purge by filter selects and acts on at a time. */
  batch: 500,
  errorContains: 200,
} as const;

export type DeadLetters = ReturnType<typeof createDeadLetters>;

export function createDeadLetters(deps: DeadLettersDeps) {
  const { store, sink, events, logger } = deps;

  /** `known`, here and below: violations the caller already found in the request (server/mapping.ts). */
  async function list(
    tenantId: string,
    input: ListDeadLettersInput,
    known: readonly FieldViolation[] = [],
  ) {
    const v: FieldViolation[] = [...known];
    if (input.pageSize < 0 || input.pageSize > PAGE_SIZE.max)
      v.push({ field: 'page_size', description: `must be 0 to ${PAGE_SIZE.max}` });
    checkFilter(input.filter, 'filter', v);
    const cursor = input.pageToken === '' ? null : decodePageToken('dead-letters', input.pageToken);
    if (cursor === undefined)
      v.push({ field: 'page_token', description: 'is not a token this API returned' });
    if (v.length > 0) throw new ValidationError(v);
    const limit = input.pageSize === 0 ? PAGE_SIZE.default : input.pageSize;
    const rows = await store.deadLetters(tenantId, {
      ...queryOf(input.filter),
      cursor: cursor ? { deadLetteredAt: cursor.at, id: cursor.id } : null,
      limit: limit + 1,
    });
    const { page, nextPageToken } = pageOf('dead-letters', rows, limit, (n) =>
      n.deadLetteredAt === null ? null : { at: n.deadLetteredAt, id: n.id },
    );
    return { deadLetters: page, nextPageToken };
  }

  async function get(
    tenantId: string,
    id: string,
  ): Promise<{ notification: Notification; events: NotificationEvent[] }> {
    requireUuid(id, 'id');
    const notification = await store.get(tenantId, id);
    if (notification === null || !isDeadLetter(notification))
      throw new NotFoundError(`dead letter ${id}`);
    return { notification, events: await store.history(tenantId, id) };
  }

  /**
   * FAILED -> PENDING under a new generation with a fresh retry budget, then queued. A failed
   * publish does not fail the call: the rows stay unpublished and the outbox sweep publishes them.
   */
  async function replay(
    tenantId: string,
    selection: DeadLetterSelection,
    known: readonly FieldViolation[] = [],
  ): Promise<BulkResult> {
    checkSelection(selection, known);
    const result = await forEachSelected(tenantId, selection, async (ids) => {
      const replayed = await store.replay(tenantId, ids);
      if (replayed.length === 0) return replayed;
      // The stream copies go before the jobs are queued: their removal is by subject, so once a
      // replayed job could fail again, it would also remove the new generation's copy.
      await removeCopies(replayed);
      for (const n of replayed) events.publish(eventOf(n, null, null));
      try {
        await deps.dispatch(replayed);
      } catch (err) {
        logger.warn(
          { count: replayed.length, err: errorMessage(err) },
          'publishing replayed dead letters failed; the outbox sweep will publish them',
        );
      }
      return replayed;
    });
    logger.info({ tenantId, count: result.ids.length, more: result.more }, 'dead letters replayed');
    return result;
  }

  /** Takes dead letters off the list; they stay FAILED. */
  async function purge(
    tenantId: string,
    selection: DeadLetterSelection,
    known: readonly FieldViolation[] = [],
  ): Promise<BulkResult> {
    checkSelection(selection, known);
    const result = await forEachSelected(tenantId, selection, async (ids) => {
      const purged = await store.purgeDeadLetters(tenantId, ids);
      await removeCopies(purged);
      return purged;
    });
    logger.info({ tenantId, count: result.ids.length, more: result.more }, 'dead letters purged');
    return result;
  }

  /**
   * Runs `act` on the selected ids: the given ones at once, or a filter's matches batch by batch,
   * newest first, up to the per-call cap. `act` returns the rows it changed.
   */
  async function forEachSelected(
    tenantId: string,
    selection: DeadLetterSelection,
    act: (ids: readonly string[]) => Promise<readonly Notification[]>,
  ): Promise<BulkResult> {
    if (selection.filter === null) {
      const changed = await act([...new Set(selection.ids)]);
      return { ids: changed.map((n) => n.id), more: false };
    }
    const query = queryOf(selection.filter);
    const ids: string[] = [];
    let selected = 0;
    let cursor: DeadLetterQuery['cursor'] = null;
    for (;;) {
      const room = DEAD_LETTER_LIMITS.perCall - selected;
      // One row beyond the cap is enough to tell whether there are more.
      const limit = Math.min(DEAD_LETTER_LIMITS.batch, room + 1);
      const page = await store.deadLetters(tenantId, { ...query, cursor, limit });
      const taken = page.slice(0, room);
      selected += taken.length;
      if (taken.length > 0) ids.push(...(await act(taken.map((n) => n.id))).map((n) => n.id));
      if (page.length > taken.length) return { ids, more: true };
      const last = page.at(-1);
      if (page.length < limit || last === undefined || last.deadLetteredAt === null)
        return { ids, more: false };
      // Keyset paging, not "the first page again": rows this call skipped stay behind the cursor.
      cursor = { deadLetteredAt: last.deadLetteredAt, id: last.id };
    }
  }

  /** The sink logs its own failures; a copy left behind must not fail a replay or purge. */
  async function removeCopies(rows: readonly Notification[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await sink.remove(rows);
    } catch (err) {
      logger.warn(
        { count: rows.length, err: errorMessage(err) },
        'removing dead-letter copies from the stream failed',
      );
    }
  }

  return { list, get, replay, purge };
}

/** FAILED and still on the dead-letter list (neither replayed nor purged). */
function isDeadLetter(n: Notification): boolean {
  return n.status === 'FAILED' && n.deadLetteredAt !== null;
}

function queryOf(filter: DeadLetterFilter): Omit<DeadLetterQuery, 'cursor' | 'limit'> {
  return {
    ids: null,
    channels: filter.channels,
    errorContains: filter.errorContains === '' ? null : filter.errorContains,
    after: filter.after,
    before: filter.before,
  };
}

/** Adds a violation, named under `prefix`, for every bad condition of a filter. */
function checkFilter(filter: DeadLetterFilter, prefix: string, v: FieldViolation[]): void {
  if (filter.errorContains.length > DEAD_LETTER_LIMITS.errorContains)
    v.push({
      field: `${prefix}.error_contains`,
      description: `must be at most ${DEAD_LETTER_LIMITS.errorContains} characters`,
    });
  // PostgreSQL text cannot hold U+0000: the query would fail with an internal error.
  else if (filter.errorContains.includes('\u0000'))
    v.push({
      field: `${prefix}.error_contains`,
      description: 'must not contain NUL (U+0000) characters',
    });
  if (filter.after && filter.before && filter.after >= filter.before)
    v.push({
      field: `${prefix}.dead_lettered_before`,
      description: 'must be after dead_lettered_after',
    });
}

/** Exactly one of ids and filter, each valid; throws ValidationError naming every bad field. */
function checkSelection(selection: DeadLetterSelection, known: readonly FieldViolation[]): void {
  const v: FieldViolation[] = [...known];
  const { ids, filter } = selection;
  if (ids.length === 0 && filter === null) {
    v.push({
      field: 'ids',
      description: 'ids or filter is required; an empty filter selects every dead letter',
    });
  } else if (ids.length > 0 && filter !== null) {
    v.push({ field: 'filter', description: 'must not be set together with ids' });
  }
  if (ids.length > DEAD_LETTER_LIMITS.ids) {
    v.push({ field: 'ids', description: `must have at most ${DEAD_LETTER_LIMITS.ids} entries` });
  } else {
    ids.forEach((id, i) => {
      if (!isUuid(id)) v.push({ field: `ids[${i}]`, description: 'must be a UUID' });
    });
  }
  if (filter !== null) checkFilter(filter, 'filter', v);
  if (v.length > 0) throw new ValidationError(v);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
