import { Migration } from '@mikro-orm/migrations';

/**
 * The in-app inbox: which inbox change a history event records, and partial indexes over the
 * inbox items (delivered in_app notifications) for the unread count and the three listings. The
 * predicates are literals, and the inbox store's queries repeat them as literals, so the planner
 * can prove a query implies an index's predicate.
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
    this.addSql(`create index notification_inbox_idx
      on notification (tenant_id, user_id, created_at desc, id desc)
      where channel = 'in_app' and status = 'DELIVERED' and archived_at is null`);
    this.addSql(`create index notification_inbox_archived_idx
      on notification (tenant_id, user_id, created_at desc, id desc)
      where channel = 'in_app' and status = 'DELIVERED' and archived_at is not null`);
  }

  override down(): void {
    this.addSql('drop index if exists notification_inbox_archived_idx');
    this.addSql('drop index if exists notification_inbox_idx');
    this.addSql('drop index if exists notification_inbox_unread_idx');
    this.addSql('alter table notification_event drop column if exists inbox_change');
  }
}
