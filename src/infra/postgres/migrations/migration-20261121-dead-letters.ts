import { Migration } from '@mikro-orm/migrations';

/**
 * Dead letters and replays: the retry budget's floor, when a row entered the dead letters, and the
 * generation on every history event (a replay starts a new one, and the history shows it).
 */
export class Migration20261121DeadLetters extends Migration {
  override name = 'Migration20261121DeadLetters';

  override up(): void {
    // Millisecond precision, as JavaScript dates have: the listing's page tokens carry this value,
    // and a finer one would make rows dead-lettered within the same millisecond skip a page.
    this.addSql(`alter table notification
      add column attempt_floor integer not null default 0,
      add column dead_lettered_at timestamptz(3)`);
    // Notifications that failed before this migration are dead letters too.
    this.addSql(`update notification set dead_lettered_at = updated_at where status = 'FAILED'`);
    this.addSql(`alter table notification_event
      add column generation integer not null default 1`);
    // The dead-letter listing, newest first, keyset paged.
    this.addSql(`create index notification_dead_letter_idx
      on notification (tenant_id, dead_lettered_at desc, id desc)
      where dead_lettered_at is not null`);
  }

  override down(): void {
    this.addSql('drop index if exists notification_dead_letter_idx');
    this.addSql('alter table notification_event drop column generation');
    this.addSql(`alter table notification
      drop column dead_lettered_at, drop column attempt_floor`);
  }
}
