import { Migration } from '@mikro-orm/migrations';

/**
 * GetStats counts a tenant's notifications of a window by channel and status. Rather than add an
 * index (one more entry to write on every insert and every status change), the tenant-wide listing
 * index is rebuilt covering channel and status, so the count is an index-only range scan over the
 * window and the write path keeps the same number of indexes. Its key, and so the listing's keyset
 * order, is unchanged. notification_status_idx stays: it serves listings filtered by a rare status
 * (a tenant's FAILED ones), which a window index would find only by reading the whole window.
 */
export class Migration20261121Stats extends Migration {
  override name = 'Migration20261121Stats';

  override up(): void {
    this.addSql(`create index notification_tenant_window_idx
      on notification (tenant_id, created_at desc, id desc) include (channel, status)`);
    this.addSql('drop index if exists notification_tenant_latest_idx');
  }

  override down(): void {
    this.addSql(`create index notification_tenant_latest_idx
      on notification (tenant_id, created_at desc, id desc)`);
    this.addSql('drop index if exists notification_tenant_window_idx');
  }
}
