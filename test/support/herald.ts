/**
 * Starts Herald in-process for a test: its own database, NATS layout and free ports; deliveries of
 * the log provider go to a file the test can read.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { startGateway, startHerald, type Herald, type Role } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { CHANNELS } from '../../src/domain/notification.js';
import { GRAPHQL_PATH } from '../../src/graphql/gateway.js';
import { deleteStreams } from '../../src/infra/nats/streams.js';
import type { ResolveHost } from '../../src/providers/private-addresses.js';
import { NATS_URL, randomLayout } from './nats.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export interface TestHerald {
  herald: Herald;
  config: Config;
  db: TestDatabase;
  /** Environment for a `herald` child process sharing this instance's database and NATS. */
  env: Record<string, string>;
  h2cUrl: string;
  httpUrl: string;
  /** The GraphQL endpoint, when started with `gateway: true` (e.g. http://127.0.0.1:1234/graphql). */
  gatewayUrl: string | null;
  /** The gateway's fetch handler (no port), when started with `gateway: true`. */
  gatewayFetch: ((request: Request) => Promise<Response>) | null;
  logFile: string;
  /** Notification ids the log provider delivered, one entry per delivery. */
  deliveries(): string[];
  stop(): Promise<void>;
}

export interface TestHeraldOptions {
  roles?: Role[];
  natsUrl?: string;
  env?: Record<string, string>;
  /** Also start the GraphQL gateway in this process, against this api. */
  gateway?: boolean;
  /** How the webhook provider resolves the host names of `to` URLs (default: the system's). */
  resolveHost?: ResolveHost;
  /** The URL Herald reaches its test database at, from the database's own (e.g. through a proxy). */
  databaseUrl?: (url: string) => string;
}

export async function startTestHerald(options: TestHeraldOptions = {}): Promise<TestHerald> {
  const db = await createTestDatabase();
  const layout = randomLayout();
  const dir = mkdtempSync(join(tmpdir(), 'herald-test-'));
  const logFile = join(dir, 'deliveries.jsonl');
  const natsUrl = options.natsUrl ?? NATS_URL;
  const env: Record<string, string> = {
    HERALD_ENV: 'test',
    // Every caller is the test tenant; test/integration/access.test.ts turns authentication on.
    HERALD_AUTH: 'off',
    // Far above what any test sends; test/integration/rate-limits.test.ts sets its own.
    HERALD_RATE_LIMITS: JSON.stringify({ default: { limit: 100_000, windowMs: 60_000 } }),
    // Quiet hours would hold back email, sms and push sent at night (UTC): tests that want them
    // set the tenant's own (test/integration/scheduling.test.ts).
    HERALD_DEFAULT_QUIET_HOURS: 'off',
    HERALD_LOG_LEVEL: 'warn',
    HERALD_DATABASE_URL: options.databaseUrl?.(db.url) ?? db.url,
    HERALD_DATABASE_POOL_SIZE: '6',
    HERALD_NATS_URL: natsUrl,
    HERALD_NATS_SUBJECT_PREFIX: layout.subjectPrefix,
    HERALD_NATS_STREAM_PREFIX: layout.streamPrefix,
    HERALD_REDIS_PREFIX: layout.subjectPrefix,
    HERALD_API_H2C_PORT: '0',
    HERALD_API_HTTP_PORT: '0',
    HERALD_ADMIN_PORT: '0',
    HERALD_GATEWAY_PORT: '0',
    HERALD_SWEEP_INTERVAL_MS: '200',
    HERALD_OUTBOX_GRACE_MS: '500',
    HERALD_ACK_WAIT_MS: '3000',
    HERALD_PROVIDER_TIMEOUT_MS: '2000',
    HERALD_SHUTDOWN_TIMEOUT_MS: '5000',
    HERALD_LOG_PROVIDER_FILE: logFile,
    ...options.env,
  };
  const config = loadConfig(env);
  const herald = await startHerald({
    config,
    logger: pino({ level: 'warn' }),
    roles: options.roles ?? ['api', 'worker', 'scheduler'],
    resolveHost: options.resolveHost,
  });
  const ports = herald.ports ?? { h2cPort: 0, httpPort: 0 };
  // HERALD_GATEWAY_PORT is 0 here: a free port.
  const gateway = options.gateway
    ? await startGateway(config, pino({ level: 'warn' }), `http://127.0.0.1:${ports.h2cPort}`)
    : null;
  return {
    herald,
    config,
    db,
    env,
    h2cUrl: `http://127.0.0.1:${ports.h2cPort}`,
    httpUrl: `http://127.0.0.1:${ports.httpPort}`,
    gatewayUrl: gateway ? `http://127.0.0.1:${gateway.port}${GRAPHQL_PATH}` : null,
    gatewayFetch: gateway ? (request) => gateway.fetch(request) : null,
    logFile,
    deliveries: () => readDeliveries(logFile),
    async stop() {
      await gateway?.stop();
      await herald.stop();
      await db.drop();
      await removeStreams(natsUrl, layout);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function readDeliveries(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { notificationId: string }).notificationId);
}

/**
 * Deletes the job and dead-letter streams of `layout`, if NATS at `url` (one URL or a
 * comma-separated list) answers.
 */
export async function removeStreams(url: string, layout: ReturnType<typeof randomLayout>) {
  const nc = await connect({ servers: url.split(','), reconnect: false }).catch(() => null);
  if (nc === null) return;
  try {
    await deleteStreams(await jetstreamManager(nc), layout, CHANNELS);
  } finally {
    await nc.close();
  }
}
