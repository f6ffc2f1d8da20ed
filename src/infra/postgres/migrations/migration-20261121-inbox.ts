import { Migration } from '@mikro-orm/migrations';

/**
 * The in-app inbox: which inbox change a history event records, and a partial index over the
 * unread inbox items (delivered in_app notifications neither read nor archived) for the unread
 * count and the UNREAD listing. Its predicate is literal, and the inbox store's queries repeat it
 * as literals, so the planner can prove a query implies it. The inbox is ordered by delivery, not
 * creation: a notification scheduled ahead or delivered late after retries must show at the top
 * when it arrives, not below everything created since. The ALL and ARCHIVED listings have no index
 * of their own and read the user's rows through notification_user_latest_idx, sorting the inbox
 * items by delivery: every index here is written again at each delivery of an in_app
 * notification, and two more cost the delivery path about a tenth of its throughput in
 * `npm run bench`.
 */
export class Migration20261121Inbox extends Migration {
  override name = 'Migration20261121Inbox';

  override up(): void {
    this.addSql(`alter table notification_event add column inbox_change text
      check (inbox_change in ('SEEN', 'READ', 'UNREAD', 'ARCHIVED', 'UNARCHIVED'))`);
    // The listings' page tokens carry delivered_at as a JavaScript date, so deliveries write it in
    // whole milliseconds: a finer value would make items delivered within the same millisecond
    // skip a page. Rows delivered earlier are truncated here; retyping the column to
    // timestamptz(3) would rewrite the whole table, and only the inbox pages by it.
    this.addSql(`update notification set delivered_at = date_trunc('milliseconds', delivered_at)
      where channel = 'in_app' and status = 'DELIVERED'
        and delivered_at <> date_trunc('milliseconds', delivered_at)`);
    // Unread items: the count reads only this index, and the UNREAD listing pages it.
    this.addSql(`create index notification_inbox_unread_idx
      on notification (tenant_id, user_id, delivered_at desc, id desc)
      where channel = 'in_app' and status = 'DELIVERED' and read_at is null
        and archived_at is null`);
  }

  override down(): void {
    this.addSql('drop index if exists notification_inbox_unread_idx');
    this.addSql('alter table notification_event drop column if exists inbox_change');
  }
}
