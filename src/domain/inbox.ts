/**
 * The in-app inbox behind InboxService: a user's delivered in_app notifications, with their
 * engagement state (seen, read, archived). Every effective change is a history event and a status
 * event like a status change (the status stays DELIVERED; the event's inboxChange says what
 * changed), so watchers see it; a change that changes nothing writes and publishes nothing.
 */
import { ValidationError, type FieldViolation } from './errors.js';
import { isUuid } from './ids.js';
import { INBOX_CHANGES, type InboxChange, type Notification } from './notification.js';
import { eventOf, PAGE_SIZE } from './notifications.js';
import { decodePageToken, pageOf } from './page-token.js';
import type { StatusEvents } from './ports.js';
import type { StatusEvent } from './status-event.js';
import { requireUserId, validateUserId } from './validation.js';

/**
 * Which items a listing returns: `unread` (neither read nor archived, what the unread count
 * counts), `all` (not archived) or `archived`.
 */
export const INBOX_FILTERS = ['unread', 'all', 'archived'] as const;
export type InboxFilter = (typeof INBOX_FILTERS)[number];

/** The most ids one MarkInbox may name. */
export const MARK_MAX_IDS = 100;

/** Items one MarkAllRead statement changes; a larger inbox takes several statements. */
export const MARK_ALL_BATCH = 500;

/**
 * Inbox items are a user's in_app notifications that were DELIVERED; every method sees only those
 * of (tenantId, userId). Marks are conditional on the state they change (marking a read item read
 * matches no row), bump the version and append a history event carrying the change, in one
 * statement.
 */
export interface InboxStore {
  /**
   * Newest delivered first (deliveredAt desc, id desc), strictly after `before` in that order:
   * an item scheduled ahead or delivered late arrives at the top, not among its creation peers.
   */
  list(
    tenantId: string,
    userId: string,
    filter: InboxFilter,
    before: { deliveredAt: Date; id: string } | null,
    limit: number,
  ): Promise<Notification[]>;
  /** Applies `change` to those of `ids` it changes; the changed items, as they are now. */
  mark(
    tenantId: string,
    userId: string,
    ids: readonly string[],
    change: InboxChange,
  ): Promise<Notification[]>;
  /** The inbox items among `ids`. */
  items(tenantId: string, userId: string, ids: readonly string[]): Promise<Notification[]>;
  /** Marks up to `limit` unread items read (earliest delivered first); the changed items. */
  markSomeRead(tenantId: string, userId: string, limit: number): Promise<Notification[]>;
  /** Items neither read nor archived. */
  unreadCount(tenantId: string, userId: string): Promise<number>;
}

export interface ListInboxInput {
  userId: string;
  /** An INBOX_FILTERS value; '' means `all`. */
  filter: string;
  pageSize: number;
  pageToken: string;
}

export interface MarkInboxInput {
  userId: string;
  ids: readonly string[];
  /** An INBOX_CHANGES value. */
  change: string;
}

export type MarkOutcome = 'changed' | 'unchanged' | 'not_found';

export interface MarkResult {
  id: string;
  outcome: MarkOutcome;
  /** The item after the mark; null when not found. */
  notification: Notification | null;
}

export type Inbox = ReturnType<typeof createInbox>;

export interface InboxDeps {
  store: InboxStore;
  events: StatusEvents;
  /** Items per MarkAllRead statement (default MARK_ALL_BATCH). */
  markAllBatch?: number;
}

export function createInbox(deps: InboxDeps) {
  const { store, events } = deps;
  const batch = deps.markAllBatch ?? MARK_ALL_BATCH;

  function publish(changed: readonly Notification[], change: InboxChange): void {
    for (const n of changed) events.publish(inboxEventOf(n, change));
  }

  async function list(tenantId: string, input: ListInboxInput) {
    const v: FieldViolation[] = [];
    const bad = (field: string, description: string) => v.push({ field, description });
    validateUserId(input.userId, bad);
    const filter = input.filter === '' ? 'all' : input.filter;
    if (!(INBOX_FILTERS as readonly string[]).includes(filter)) {
      bad('filter', `must be one of ${INBOX_FILTERS.join(', ')} (got ${filter})`);
    }
    if (input.pageSize < 0 || input.pageSize > PAGE_SIZE.max) {
      bad('page_size', `must be 0 to ${PAGE_SIZE.max}`);
    }
    const before = input.pageToken === '' ? null : decodePageToken('inbox', input.pageToken);
    if (before === undefined) bad('page_token', 'is not a token this API returned');
    if (v.length > 0) throw new ValidationError(v);
    const limit = input.pageSize === 0 ? PAGE_SIZE.default : input.pageSize;
    const rows = await store.list(
      tenantId,
      input.userId,
      filter as InboxFilter,
      before ? { deliveredAt: before.at, id: before.id } : null,
      limit + 1,
    );
    // Every inbox item is a DELIVERED row, so deliveredAt is set (null only to the type).
    const { page, nextPageToken } = pageOf('inbox', rows, limit, (n) =>
      n.deliveredAt === null ? null : { at: n.deliveredAt, id: n.id },
    );
    return { notifications: page, nextPageToken };
  }

  async function mark(tenantId: string, input: MarkInboxInput) {
    const change = validateMark(input);
    // The store answers with ids as PostgreSQL prints them: lower case.
    const ids = input.ids.map((id) => id.toLowerCase());
    const changed = await store.mark(tenantId, input.userId, ids, change);
    publish(changed, change);
    const byId = new Map(changed.map((n) => [n.id, n]));
    const rest = ids.filter((id) => !byId.has(id));
    const current = rest.length === 0 ? [] : await store.items(tenantId, input.userId, rest);
    const currentById = new Map(current.map((n) => [n.id, n]));
    const results: MarkResult[] = input.ids.map((id, i) => {
      const n = byId.get(ids[i] as string);
      if (n !== undefined) return { id, outcome: 'changed', notification: n };
      const c = currentById.get(ids[i] as string);
      return c === undefined
        ? { id, outcome: 'not_found', notification: null }
        : { id, outcome: 'unchanged', notification: c };
    });
    return { results, unreadCount: await store.unreadCount(tenantId, input.userId) };
  }

  async function markAllRead(tenantId: string, userId: string) {
    requireUserId(userId);
    let marked = 0;
    // Bounded statements, so one huge inbox holds no long lock; each locks a full batch of items
    // that are still unread, so a short batch means none is left.
    for (;;) {
      const changed = await store.markSomeRead(tenantId, userId, batch);
      publish(changed, 'READ');
      marked += changed.length;
      if (changed.length < batch) break;
    }
    return { marked, unreadCount: await store.unreadCount(tenantId, userId) };
  }

  async function unreadCount(tenantId: string, userId: string): Promise<number> {
    requireUserId(userId);
    return store.unreadCount(tenantId, userId);
  }

  return { list, mark, markAllRead, unreadCount };
}

/** The status event of an inbox change: the item as it is now, and the change. */
export function inboxEventOf(n: Notification, change: InboxChange): StatusEvent {
  const e = eventOf(n, null, null);
  return { ...e, event: { ...e.event, inboxChange: change } };
}

function validateMark(input: MarkInboxInput): InboxChange {
  const v: FieldViolation[] = [];
  const bad = (field: string, description: string) => v.push({ field, description });
  validateUserId(input.userId, bad);
  if (input.ids.length === 0) bad('ids', 'at least one id is required');
  else if (input.ids.length > MARK_MAX_IDS) bad('ids', `at most ${MARK_MAX_IDS} ids`);
  else {
    input.ids.forEach((id, i) => {
      if (!isUuid(id)) bad(`ids[${i}]`, 'must be a UUID');
      else if (input.ids.findIndex((o) => o.toLowerCase() === id.toLowerCase()) !== i) {
        bad(`ids[${i}]`, 'is a repeat');
      }
    });
  }
  const change = (INBOX_CHANGES as readonly string[]).includes(input.change)
    ? (input.change as InboxChange)
    : null;
  if (change === null) {
    bad(
      'action',
      input.change === ''
        ? `is required; one of ${INBOX_CHANGES.join(', ')}`
        : `must be one of ${INBOX_CHANGES.join(', ')} (got ${input.change})`,
    );
  }
  if (v.length > 0 || change === null) throw new ValidationError(v);
  return change;
}
