import { Migration } from '@mikro-orm/migrations';

/**
 * Templates: one `template` row per id (its latest version and archive state, the row a new
 * version locks) and one immutable `template_version` row per version.
 */
export class Migration20261121Templates extends Migration {
  override name = 'Migration20261121Templates';

  override up(): void {
    this.addSql(`
      create table template (
        tenant_id text not null,
        id text not null,
        latest_version int not null,
        created_at timestamptz not null,
        updated_at timestamptz not null,
        archived_at timestamptz,
        primary key (tenant_id, id)
      )`);
    this.addSql(`
      create table template_version (
        tenant_id text not null,
        template_id text not null,
        version int not null,
        description text not null default '',
        default_locale text not null,
        variables jsonb not null,
        locales jsonb not null,
        created_at timestamptz not null,
        primary key (tenant_id, template_id, version),
        foreign key (tenant_id, template_id) references template (tenant_id, id)
      )`);
  }

  override down(): void {
    this.addSql('drop table if exists template_version');
    this.addSql('drop table if exists template');
  }
}
