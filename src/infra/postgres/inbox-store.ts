/**
 * InboxStore on PostgreSQL. Inbox items are delivered in_app rows of `notification`. Each mark is
 * one statement that locks the rows still in the state it changes (in one order, so concurrent
 * bulk marks cannot deadlock), updates them with a version bump and appends their history events.
 * The predicates repeat the unread index's as literals (not parameters), so the planner can
 * use it.
 */
import type pg from 'pg';
import type { InboxFilter, InboxStore } from '../../domain/inbox.js';
import type { InboxChange } from '../../domain/notification.js';
import {
  COLUMNS,
  appendEvents,
  qualified,
  toNotification,
  type Row,
} from './notification-store.js';

const ITEM = `channel = 'in_app' and status = 'DELIVERED'`;
const UNREAD = `read_at is null and archived_at is null`;

const FILTERS: Record<InboxFilter, string> = {
  unread: UNREAD,
  all: 'archived_at is null',
  archived: 'archived_at is not null',
};

/** Per change: the rows it applies to (those it would change) and what it sets. */
const CHANGES: Record<InboxChange, { where: string; set: string }> = {
  SEEN: { where: 'seen_at is null', set: 'seen_at = now()' },
  READ: { where: 'read_at is null', set: 'read_at = now(), seen_at = coalesce(n.seen_at, now())' },
  UNREAD: { where: 'read_at is not null', set: 'read_at = null' },
  ARCHIVED: { where: 'archived_at is null', set: 'archived_at = now()' },
  UNARCHIVED: { where: 'archived_at is not null', set: 'archived_at = null' },
};

/** The unread count; exported so a test can check its plan uses notification_inbox_unread_idx. */
export const UNREAD_COUNT_SQL = `select count(*)::int as n from notification
  where tenant_id = $1 and user_id = $2 and ${ITEM} and ${UNREAD}`;

/**
 * Updates the rows `picked` selects (which must lock them) to `change`, bumping their version and
 * appending a history event that names the change; returns them.
 */
function changeStatement(picked: string, change: InboxChange): string {
  return `with picked as (${picked}),
    changed as (
      update notification n set ${CHANGES[change].set}, version = n.version + 1,
        updated_at = now()
      from picked where n.id = picked.id
      returning ${qualified('n')}, null::text as ev_provider, null::text as ev_error
    ),
    ${appendEvents(`'${change}'`)}
    select * from changed`;
}

export function createInboxStore(pool: pg.Pool): InboxStore {
  const run = async (name: string, text: string, values: unknown[]) =>
    (await pool.query<Row>({ name: `herald_inbox_${name}`, text, values })).rows.map(
      toNotification,
    );

  return {
    list(tenantId, userId, filter, before, limit) {
      const cursor = before === null ? '' : `and (delivered_at, id) < ($4, $5::uuid)`;
      const values: unknown[] = [tenantId, userId, limit];
      if (before !== null) values.push(before.deliveredAt, before.id);
      return run(
        `list_${filter}${before === null ? '' : '_after'}`,
        `select ${COLUMNS} from notification
         where tenant_id = $1 and user_id = $2 and ${ITEM} and ${FILTERS[filter]} ${cursor}
         order by delivered_at desc, id desc limit $3`,
        values,
      );
    },

    mark(tenantId, userId, ids, change) {
      // Locked in (delivered_at, id) order, the order MarkAllRead locks in too. FOR UPDATE re-checks
      // the condition on a row another mark changed meanwhile, so each change happens once.
      const picked = `select id from notification
        where tenant_id = $1 and user_id = $2 and id = any($3::uuid[]) and ${ITEM}
          and ${CHANGES[change].where}
        order by delivered_at, id for update`;
      return run(`mark_${change.toLowerCase()}`, changeStatement(picked, change), [
        tenantId,
        userId,
        ids,
      ]);
    },

    items(tenantId, userId, ids) {
      return run(
        'items',
        `select ${COLUMNS} from notification
         where tenant_id = $1 and user_id = $2 and id = any($3::uuid[]) and ${ITEM}`,
        [tenantId, userId, ids],
      );
    },

    markSomeRead(tenantId, userId, limit) {
      // LIMIT sits above the row locks: rows a concurrent mark took out of the unread set are
      // skipped and more are read, so a batch is full whenever that many unread items remain.
      const picked = `select id from notification
        where tenant_id = $1 and user_id = $2 and ${ITEM} and ${UNREAD}
        order by delivered_at, id limit $3 for update`;
      return run('mark_all_read', changeStatement(picked, 'READ'), [tenantId, userId, limit]);
    },

    async unreadCount(tenantId, userId) {
      const { rows } = await pool.query<{ n: number }>({
        name: 'herald_inbox_unread_count',
        text: UNREAD_COUNT_SQL,
        values: [tenantId, userId],
      });
      return rows[0]?.n ?? 0;
    },
  };
}
