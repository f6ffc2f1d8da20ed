import { Migration } from '@mikro-orm/migrations';

/**
 * Preferences: each user's rules and quiet-hours override (one row per user, read with the
 * tenant's settings in one statement per Send), and each tenant's defaults. Neither table refers
 * to `tenant` or `recipient`: a tenant that runs without API keys (authentication off) and a user
 * Herald has no contact data for may still have preferences. Null quiet hours follow the next
 * level: a user's the tenant's, a tenant's the deployment's HERALD_DEFAULT_QUIET_HOURS.
 */
export class Migration20261121Preferences extends Migration {
  override name = 'Migration20261121Preferences';

  override up(): void {
    this.addSql(`
      create table user_preference (
        tenant_id text not null,
        user_id text not null,
        rules jsonb not null default '[]',
        quiet_enabled boolean,
        quiet_start smallint,
        quiet_end smallint,
        updated_at timestamptz not null,
        primary key (tenant_id, user_id)
      )`);
    this.addSql(`
      create table tenant_settings (
        tenant_id text primary key,
        default_rules jsonb not null default '[]',
        required_categories text[] not null default '{}',
        quiet_enabled boolean,
        quiet_start smallint,
        quiet_end smallint,
        default_time_zone text not null,
        updated_at timestamptz not null
      )`);
  }

  override down(): void {
    this.addSql('drop table if exists tenant_settings');
    this.addSql('drop table if exists user_preference');
  }
}
