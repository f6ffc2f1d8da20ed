import { Migration } from '@mikro-orm/migrations';

/**
 * Columns of the product model on notification: the template version a send pinned, why a
 * notification was suppressed or deferred, and its in-app inbox state.
 */
export class Migration20261121Product extends Migration {
  override name = 'Migration20261121Product';

  override up(): void {
    this.addSql(`
      alter table notification
        add column template jsonb,
        add column status_reason text,
        add column seen_at timestamptz,
        add column read_at timestamptz,
        add column archived_at timestamptz`);
  }

  override down(): void {
    this.addSql(`
      alter table notification
        drop column if exists template,
        drop column if exists status_reason,
        drop column if exists seen_at,
        drop column if exists read_at,
        drop column if exists archived_at`);
  }
}
