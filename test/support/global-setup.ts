/**
 * Integration global setup: migrates the template database every test file's own database is
 * cloned from (one per run, dropped at teardown).
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { migrate, openDatabase } from '../../src/infra/postgres/orm.js';
import { adminQuery, databaseUrl } from './postgres.js';

const template = `herald_template_${randomBytes(4).toString('hex')}`;

export async function setup(): Promise<void> {
  process.env.HERALD_TEST_TEMPLATE_DB = template;
  await adminQuery(`create database ${template}`);
  const db = await openDatabase(
    { url: databaseUrl(template), poolSize: 1 },
    pino({ level: 'warn' }),
  );
  try {
    await migrate(db);
  } finally {
    await db.close();
  }
}

export async function teardown(): Promise<void> {
  await adminQuery(`drop database if exists ${template} with (force)`);
}
