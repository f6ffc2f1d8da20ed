import { Migration } from '@mikro-orm/migrations';

/**
 * The in-app inbox: which inbox change a history event records, and a partial index over the
 * unread inbox items (delivered in_app notifications neither read nor archived) for the unread
 * count and the UNREAD listing. Its predicate is literal, and the inbox store's queries repeat it
 * as literals, so the planner can prove a query implies it. The ALL and ARCHIVED listings walk
 * the user's notifications newest first (notification_user_latest_idx) instead of indexes of
 * their own: every index here is written again at each delivery of an in_app notification, and
 * two more cost the delivery path about a tenth of its throughput in `npm run bench`.
 */
export class Migration20261121Inbox extends Migration {
  override name = 'Migration20261121Inbox';

  override up(): void {
    this.addSql(`alter table notification_event add column inbox_change text
      check (inbox_change in ('SEEN', 'READ', 'UNREAD', 'ARCHIVED', 'UNARCHIVED'))`);
    // Unread items: the count reads only this index, and the UNREAD listing pages it.
    this.addSql(`create index notification_inbox_unread_idx
      on notification (tenant_id, user_id, created_at desc, id desc)
      where channel = 'in_app' and status = 'DELIVERED' and read_at is null
        and archived_at is null`);
  }

  override down(): void {
    this.addSql('drop index if exists notification_inbox_unread_idx');
    this.addSql('alter table notification_event drop column if exists inbox_change');
  }
}
