/**
 * The `herald` command's failure modes: each is one line on stderr naming the problem (and how to
 * fix it), never a stack trace.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantTokenSecret } from '../../src/infra/auth/user-tokens.js';
import { MIGRATIONS } from '../../src/infra/postgres/orm.js';
import { removeStreams } from '../support/herald.js';
import { NATS_URL, randomLayout } from '../support/nats.js';
import {
  adminQuery,
  createTestDatabase,
  databaseUrl,
  type TestDatabase,
} from '../support/postgres.js';

const cli = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function herald(args: string[], env: Record<string, string>): Promise<Run> {
  // Only PATH from the outside: no HERALD_* variable of the caller may leak in.
  const childEnv = { PATH: process.env.PATH ?? '', HERALD_LOG_LEVEL: 'warn', ...env };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: childEnv, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
      },
    );
  });
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

describe('herald', () => {
  it('prints one line naming PostgreSQL and how to start it when the database is unreachable', async () => {
    const run = await herald(['api'], {
      HERALD_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/herald',
    });

    expect(run.code).toBe(1);
    expect(run.stderr.split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(
      /cannot reach PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/herald/,
    );
    expect(run.stderr).toContain('pg_ctlcluster');
  });

  it('prints one line naming NATS and how to start it when NATS is unreachable', async () => {
    const run = await herald(['worker', '--channels', 'email'], {
      HERALD_DATABASE_URL: db.url,
      HERALD_NATS_URL: 'nats://127.0.0.1:1',
      HERALD_ADMIN_PORT: '0',
    });

    expect(run.code).toBe(1);
    expect(run.stderr.split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/cannot reach NATS at nats:\/\/127\.0\.0\.1:1/);
    expect(run.stderr).toContain('nats-server');
  });

  it('lists every bad variable when the configuration is invalid', async () => {
    const run = await herald(['api'], { HERALD_API_H2C_PORT: 'http', HERALD_ENV: 'staging' });

    expect(run.code).toBe(1);
    expect(run.stderr).toContain('invalid configuration');
    expect(run.stderr).toContain('HERALD_API_H2C_PORT');
    expect(run.stderr).toContain('HERALD_ENV');
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('says to run herald migrate when the database does not exist', async () => {
    const run = await herald(['scheduler'], {
      HERALD_DATABASE_URL: databaseUrl(`herald_missing_${randomBytes(4).toString('hex')}`),
      HERALD_ADMIN_PORT: '0',
    });

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^herald: database herald_missing_\w+ does not exist; .*herald migrate/,
    );
  });

  it('refuses to start a production worker for a channel without a provider', async () => {
    const run = await herald(['worker', '--channels', 'sms'], {
      HERALD_ENV: 'production',
      HERALD_TOKEN_SECRET: 'a-production-master-secret-of-32-chars-or-more',
      HERALD_DATABASE_URL: db.url,
      HERALD_ADMIN_PORT: '0',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'herald: no provider is configured for channel sms: add one to HERALD_PROVIDERS_FILE (or use {"type":"log"} deliberately)',
    );
  });

  it('refuses to start against a database whose schema is behind', async () => {
    const name = `herald_empty_${randomBytes(4).toString('hex')}`;
    await adminQuery(`create database ${name}`);
    try {
      const run = await herald(['scheduler'], {
        HERALD_DATABASE_URL: databaseUrl(name),
        HERALD_ADMIN_PORT: '0',
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(
        `herald: the database schema is behind (${MIGRATIONS.length} migration(s) pending); run \`herald migrate\``,
      );
    } finally {
      await adminQuery(`drop database if exists ${name} with (force)`);
    }
  });

  it('creates and migrates the database, then changes nothing on a second run, when migrating', async () => {
    const name = `herald_migrate_${randomBytes(4).toString('hex')}`;
    try {
      const env = { HERALD_DATABASE_URL: databaseUrl(name) };
      expect(await herald(['migrate'], env)).toMatchObject({ code: 0 });
      expect(await herald(['migrate'], env)).toMatchObject({ code: 0 });
      const run = await herald(['scheduler'], { ...env, HERALD_NATS_URL: 'nats://127.0.0.1:1' });
      // Past the schema check: the next dependency is what fails.
      expect(run.stderr).toContain('cannot reach NATS');
    } finally {
      await adminQuery(`drop database if exists ${name} with (force)`);
    }
  });

  it('creates, lists and revokes API keys, storing only a hash', async () => {
    const env = { HERALD_DATABASE_URL: db.url };
    const created = await herald(
      ['keys', 'create', '--tenant', 'cli-t', '--scopes', 'send,read'],
      env,
    );
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^hk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const prefix = created.stdout.slice(0, 15);
    const { rows } = await db.pool.query<{ prefix: string; secret_hash: string }>(
      'select prefix, secret_hash from api_key where tenant_id = $1',
      ['cli-t'],
    );
    expect(rows).toEqual([
      { prefix, secret_hash: expect.stringMatching(/^[0-9a-f]{64}$/) as string },
    ]);

    const listed = await herald(['keys', 'list', '--tenant', 'cli-t'], env);
    const [id, listedPrefix, scopes, state] = listed.stdout.split(/\s+/);
    expect([listedPrefix, scopes, state]).toEqual([prefix, 'send,read', 'active']);
    const revoked = await herald(['keys', 'revoke', '--tenant', 'cli-t', '--id', id ?? ''], env);
    expect(revoked.stdout).toContain(`${prefix}  send,read  revoked`);
    expect((await herald(['keys', 'list', '--tenant', 'cli-t'], env)).stdout).toBe('');

    const bad = await herald(['keys', 'create', '--tenant', 'cli-t', '--scopes', 'fly'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--scopes\[0\]: must be one of send, read, admin/);
  });

  it('prints an issued user token alone on stdout, its warnings on stderr', async () => {
    const run = await herald(['tokens', 'issue', '--tenant', 'cli-t', '--user', 'u-1'], {
      HERALD_DATABASE_URL: db.url,
    });

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(run.stderr).toContain('HERALD_TOKEN_SECRET is not set');
  });

  it('prints a tenant’s token signing secret, derived from HERALD_TOKEN_SECRET', async () => {
    const master = 'cli-test-master-secret-0123456789abcdef';
    const run = await herald(['tokens', 'secret', '--tenant', 'cli-t'], {
      HERALD_DATABASE_URL: db.url,
      HERALD_TOKEN_SECRET: master,
    });

    expect(run.code).toBe(0);
    expect(run.stdout).toBe(tenantTokenSecret(master, 'cli-t').toString('base64url'));
    expect(run.stdout).not.toBe(tenantTokenSecret(master, 'cli-u').toString('base64url'));
  });

  it('pushes a template file: creates it, adds a version only when it changed, names bad parts', async () => {
    const env = { HERALD_DATABASE_URL: db.url };
    const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
    try {
      const file = join(dir, 'welcome.json');
      const write = (text: string) =>
        writeFileSync(
          file,
          JSON.stringify({
            id: 'welcome',
            defaultLocale: 'en',
            variables: [{ name: 'name', required: true }],
            locales: { en: { sms: { text } } },
          }),
        );
      const push = () => herald(['templates', 'push', '--tenant', 'cli-t', '--file', file], env);
      write('Hi {{name}}');
      expect(await push()).toMatchObject({ code: 0, stdout: 'welcome version 1 (created)' });
      expect(await push()).toMatchObject({ code: 0, stdout: 'welcome version 1 (unchanged)' });
      write('Hello {{name}}');
      expect(await push()).toMatchObject({ code: 0, stdout: 'welcome version 2 (updated)' });
      write('Hello {{nam');
      const bad = await push();
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe(
        'herald: templates push: template.locales["en"].sms.text: unterminated tag "{{" at line 1, column 7',
      );
      const { rows } = await db.pool.query<{ version: number }>(
        'select version from template_version where tenant_id = $1 order by version',
        ['cli-t'],
      );
      expect(rows.map((r) => r.version)).toEqual([1, 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the variable to change when its port is taken, in one line', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    const layout = randomLayout();
    const inUse = (name: string) =>
      `herald: listen EADDRINUSE: address already in use 127.0.0.1:${port} — another process holds the port; set ${name} to a free port`;
    try {
      const gateway = await herald(['gateway'], { HERALD_GATEWAY_PORT: String(port) });
      expect(gateway.code).toBe(1);
      expect(gateway.stderr).toBe(inUse('HERALD_GATEWAY_PORT'));

      // The api has opened PostgreSQL, NATS and Redis by then: closing them says nothing more.
      const api = await herald(['api'], {
        HERALD_DATABASE_URL: db.url,
        HERALD_NATS_SUBJECT_PREFIX: layout.subjectPrefix,
        HERALD_NATS_STREAM_PREFIX: layout.streamPrefix,
        HERALD_API_H2C_PORT: String(port),
      });
      expect(api.code).toBe(1);
      expect(api.stderr).toBe(inUse('HERALD_API_H2C_PORT'));
      expect(api.stdout).toBe('');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await removeStreams(NATS_URL, layout);
    }
  });

  it.each([
    [['api', '--bogus'], "herald: unknown option '--bogus'; see herald --help"],
    [
      ['worker', '--channels'],
      "herald: Option '--channels <value>' argument missing; see herald --help",
    ],
    [['migrate', 'now'], "herald: unexpected argument(s): 'now'; see herald --help"],
    [
      ['keys', 'list', '--tenant', 't', 'x'],
      "herald: unexpected argument(s): 'x'; see herald --help",
    ],
    [
      ['tokens', 'issue', '--tenant', 't', '--user', 'u', '--ttl', '86401'],
      'herald: tokens issue: --ttl must be a whole number of seconds from 1 to 86400',
    ],
  ])('exits 2 with one line when the arguments are wrong: %j', async (args, line) => {
    const run = await herald(args, {});

    expect(run.code).toBe(2);
    expect(run.stderr).toBe(line);
  });

  it('exits 2 with the usage when the command is unknown', async () => {
    const run = await herald(['frobnicate'], {});

    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown command 'frobnicate'");
    expect(run.stderr).toContain('usage: herald <command>');
  });
});
