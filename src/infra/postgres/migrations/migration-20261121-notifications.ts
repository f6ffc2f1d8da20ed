import { Migration } from '@mikro-orm/migrations';

/** notification and notification_event, with the indexes the read, sweep and claim paths use. */
export class Migration20261121Notifications extends Migration {
  override name = 'Migration20261121Notifications';

  override up(): void {
    this.addSql(`
      create table notification (
        id uuid primary key,
        tenant_id text not null,
        user_id text not null,
        channel text not null check (channel in ('email', 'sms', 'push', 'in_app', 'webhook')),
        priority text not null check (priority in ('low', 'normal', 'high', 'critical')),
        category text,
        content jsonb not null,
        "to" text,
        idempotency_key text,
        request_hash text,
        correlation_id text,
        metadata jsonb not null default '{}',
        status text not null check (status in ('PENDING', 'SCHEDULED', 'PROCESSING', 'RETRYING',
          'DELIVERED', 'FAILED', 'CANCELLED', 'SUPPRESSED')),
        attempt integer not null default 0,
        version integer not null default 1,
        generation integer not null default 1,
        send_at timestamptz,
        created_at timestamptz not null,
        updated_at timestamptz not null,
        delivered_at timestamptz,
        next_attempt_at timestamptz,
        lease_until timestamptz,
        published_at timestamptz,
        provider text,
        provider_message_id text,
        last_error text
      ) with (fillfactor = 80)`);
    this.addSql(`create unique index notification_idempotency_key_uq
      on notification (tenant_id, idempotency_key) where idempotency_key is not null`);
    // A user's latest notifications, and the tenant-wide listing (both newest first, keyset paged).
    this.addSql(`create index notification_user_latest_idx
      on notification (tenant_id, user_id, created_at desc, id desc)`);
    this.addSql(`create index notification_tenant_latest_idx
      on notification (tenant_id, created_at desc, id desc)`);
    this.addSql(`create index notification_status_idx
      on notification (tenant_id, status, created_at desc)`);
    // Sweeps: due scheduled rows, unpublished rows, expired leases.
    this.addSql(`create index notification_due_idx
      on notification (send_at) where status = 'SCHEDULED'`);
    // No index mentions published_at, so stamping it is a HOT update (fillfactor leaves room).
    this.addSql(`create index notification_queued_idx
      on notification (updated_at) where status in ('PENDING', 'RETRYING')`);
    this.addSql(`create index notification_lease_idx
      on notification (lease_until) where status = 'PROCESSING'`);
    this.addSql(`
      create table notification_event (
        -- No foreign key: the event is always written in the same statement as its notification,
        -- and a key check would lock the notification row on every status change.
        notification_id uuid not null,
        version integer not null,
        status text not null,
        attempt integer not null,
        provider text,
        error text,
        time timestamptz not null,
        primary key (notification_id, version)
      )`);
  }

  override down(): void {
    this.addSql('drop table if exists notification_event');
    this.addSql('drop table if exists notification');
  }
}
