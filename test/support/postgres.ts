/**
 * A database per test file, cloned from a template that global setup migrated once.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { expect } from 'vitest';

/** The server tests use; `HERALD_TEST_POSTGRES_URL` overrides. */
export const POSTGRES_URL =
  process.env.HERALD_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Set by global setup: one template per test run, so concurrent runs do not collide. */
export function templateDb(): string {
  const name = process.env.HERALD_TEST_TEMPLATE_DB;
  if (name === undefined)
    throw new Error('HERALD_TEST_TEMPLATE_DB is not set: global setup did not run');
  return name;
}

export function databaseUrl(name: string): string {
  const u = new URL(POSTGRES_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A small pool for assertions on the stored rows. */
  pool: pg.Pool;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `herald_t_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name} template ${templateDb()}`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // drop() terminates connections still closing after pool.end(); that is expected, not a failure.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

/** A view of `pool` that counts the statements sent through `query` (to prove batching). */
export function countingPool(pool: pg.Pool): { pool: pg.Pool; statements: { count: number } } {
  const statements = { count: 0 };
  const counting = new Proxy(pool, {
    get(target, key, receiver) {
      if (key !== 'query') return Reflect.get(target, key, receiver) as unknown;
      return (...args: Parameters<pg.Pool['query']>) => {
        statements.count += 1;
        return (target.query as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { pool: counting, statements };
}

/** Resolves once the store has every one of `ids` DELIVERED (fails showing how many were). */
export async function untilDelivered(
  pool: pg.Pool,
  ids: readonly string[],
  wait: { timeout: number; interval?: number },
): Promise<void> {
  await expect
    .poll(async () => {
      const { rows } = await pool.query<{ n: number }>(
        `select count(*)::int as n from notification where id = any($1::uuid[]) and status = 'DELIVERED'`,
        [ids],
      );
      return rows[0]?.n;
    }, wait)
    .toBe(ids.length);
}

/**
 * Resolves once the database clock is past the millisecond of every delivery of `userId` so far,
 * so that a delivery made next cannot tie with theirs on `delivered_at`.
 */
export async function untilClockPastDeliveries(
  pool: pg.Pool,
  userId: string,
  wait: { timeout: number; interval: number },
): Promise<void> {
  await expect
    .poll(async () => {
      const { rows } = await pool.query<{ past: boolean }>(
        `select clock_timestamp() > max(delivered_at) + interval '1 millisecond' as past
         from notification where user_id = $1`,
        [userId],
      );
      return rows[0]?.past;
    }, wait)
    .toBe(true);
}
