import { Migration } from '@mikro-orm/migrations';

/** Recipients (a tenant's users: addresses, time zone, locale) and their push tokens. */
export class Migration20261121Recipients extends Migration {
  override name = 'Migration20261121Recipients';

  override up(): void {
    this.addSql(`
      create table recipient (
        tenant_id text not null,
        user_id text not null,
        email text,
        phone text,
        time_zone text,
        locale text,
        data jsonb not null default '{}',
        created_at timestamptz not null,
        updated_at timestamptz not null,
        primary key (tenant_id, user_id)
      )`);
    this.addSql(`
      create table push_token (
        tenant_id text not null,
        user_id text not null,
        token text not null,
        registered_at timestamptz not null,
        primary key (tenant_id, token),
        foreign key (tenant_id, user_id) references recipient (tenant_id, user_id) on delete cascade
      )`);
    this.addSql(`create index push_token_user_idx
      on push_token (tenant_id, user_id, registered_at desc)`);
  }

  override down(): void {
    this.addSql('drop table if exists push_token');
    this.addSql('drop table if exists recipient');
  }
}
