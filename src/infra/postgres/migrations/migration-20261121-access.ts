import { Migration } from '@mikro-orm/migrations';

/**
 * Tenants and their API keys. A key is found by its public prefix; only a SHA-256 hash of its
 * secret is stored, so a database dump holds no usable key.
 */
export class Migration20261121Access extends Migration {
  override name = 'Migration20261121Access';

  override up(): void {
    this.addSql(`
      create table tenant (
        id text primary key,
        name text not null,
        created_at timestamptz not null default now()
      )`);
    this.addSql(`
      create table api_key (
        id uuid primary key,
        tenant_id text not null references tenant (id),
        prefix text not null unique,
        secret_hash text not null,
        name text not null,
        scopes text[] not null,
        created_at timestamptz not null default now(),
        revoked_at timestamptz
      )`);
    this.addSql(`create index api_key_tenant_idx on api_key (tenant_id, created_at desc)`);
    // The scheduler forgets idempotency keys older than HERALD_IDEMPOTENCY_TTL_MS.
    this.addSql(`create index notification_idempotency_age_idx
      on notification (created_at) where idempotency_key is not null`);
  }

  override down(): void {
    this.addSql('drop index if exists notification_idempotency_age_idx');
    this.addSql('drop table if exists api_key');
    this.addSql('drop table if exists tenant');
  }
}
