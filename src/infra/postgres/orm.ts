/**
 * The MikroORM instance: entities, the committed migrations, and the pg pool the hot paths use.
 */
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { FailedPreconditionError, UnavailableError } from '../../domain/errors.js';
import type { Logger } from '../../domain/ports.js';
import {
  ApiKeyEntity,
  NotificationEntity,
  NotificationEventEntity,
  TenantEntity,
} from './entities.js';
import { Migration20261121Access } from './migrations/migration-20261121-access.js';
import { Migration20261121DeadLetters } from './migrations/migration-20261121-dead-letters.js';
import { Migration20261121Inbox } from './migrations/migration-20261121-inbox.js';
import { Migration20261121Notifications } from './migrations/migration-20261121-notifications.js';
import { Migration20261121Preferences } from './migrations/migration-20261121-preferences.js';
import { Migration20261121Product } from './migrations/migration-20261121-product.js';
import { Migration20261121Recipients } from './migrations/migration-20261121-recipients.js';
import { Migration20261121Stats } from './migrations/migration-20261121-stats.js';
import { Migration20261121Templates } from './migrations/migration-20261121-templates.js';

export interface PostgresOptions {
  url: string;
  poolSize: number;
}

/** Every migration, oldest first. New migrations are appended here. */
export const MIGRATIONS = [
  Migration20261121Notifications,
  Migration20261121DeadLetters,
  Migration20261121Access,
  Migration20261121Recipients,
  Migration20261121Product,
  Migration20261121Inbox,
  Migration20261121Stats,
  Migration20261121Preferences,
  Migration20261121Templates,
];

/**
 * Set on every connection Herald opens. The hot statements are prepared once per connection and
 * join parameter arrays to tables that start empty and grow (notification, recipient, ...). A
 * generic plan made while a table was small — a sequential scan — would otherwise stay cached on
 * the connection until the next ANALYZE: with autovacuum off, or before the first autoanalyze,
 * every claim would scan the whole table. Custom plans are made with the table's current size;
 * planning is per statement, and concurrent requests share statements.
 */
const SESSION_OPTIONS = '-c plan_cache_mode=force_custom_plan';

export interface Database {
  orm: MikroORM;
  pool: pg.Pool;
  close(): Promise<void>;
}

/** Connects (failing fast with UnavailableError when PostgreSQL cannot be reached). */
export async function openDatabase(options: PostgresOptions, logger: Logger): Promise<Database> {
  const orm = new MikroORM({
    clientUrl: options.url,
    entities: [NotificationEntity, NotificationEventEntity, TenantEntity, ApiKeyEntity],
    extensions: [Migrator],
    migrations: {
      migrationsList: MIGRATIONS,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
    },
    pool: { min: 0, max: options.poolSize },
    // A down database fails requests within seconds (Unavailable) instead of queueing forever.
    driverOptions: { connectionTimeoutMillis: 5_000, options: SESSION_OPTIONS },
    debug: false,
    // Databases are created only by `herald migrate` (and `herald all` in development).
    ensureDatabase: false,
    discovery: { warnWhenNoEntities: false },
  });
  try {
    const pool: pg.Pool = await orm.em.getConnection().getNativeClient();
    // An idle connection that PostgreSQL terminates (restart, failover, admin command) emits
    // 'error' on the pool; unhandled, that would crash the process. The pool replaces it on next use.
    pool.on('error', (err: Error & { code?: string }) => {
      logger.warn(
        { code: err.code, reason: err.message },
        'an idle PostgreSQL connection was closed; it is replaced on next use',
      );
    });
    const client = await pool.connect();
    client.release();
    return { orm, pool, close: () => orm.close(true) };
  } catch (err) {
    await orm.close(true).catch(() => undefined);
    if ((err as { code?: string }).code === '3D000') {
      throw new FailedPreconditionError(
        `database ${databaseName(options.url)} does not exist; create it and apply the schema with \`herald migrate\``,
      );
    }
    throw new UnavailableError(`PostgreSQL at ${redactUrl(options.url)}`, { cause: err });
  }
}

/** Fails unless every migration is applied: a role must not run against an older schema. */
export async function assertSchemaCurrent(db: Database): Promise<void> {
  const pending = await db.orm.migrator.getPending();
  if (pending.length > 0) {
    throw new FailedPreconditionError(
      `the database schema is behind (${pending.length} migration(s) pending); run \`herald migrate\``,
    );
  }
}

function databaseName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  } catch {
    return '(unknown)';
  }
}

/** Applies pending migrations; returns the names applied. */
export async function migrate(db: Database): Promise<string[]> {
  const applied = await db.orm.migrator.up();
  return applied.map((m) => m.name);
}

/** Creates the database named in the URL if it does not exist (development convenience). */
export async function ensureDatabaseExists(url: string): Promise<boolean> {
  const name = databaseName(url);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  try {
    await client.connect();
  } catch (err) {
    throw new UnavailableError(`PostgreSQL at ${redactUrl(url)}`, { cause: err });
  }
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`create database "${name.replaceAll('"', '""')}"`);
      return true;
    }
    return false;
  } finally {
    await client.end();
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
