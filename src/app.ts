/**
 * Builds Herald's roles from the configuration: opens the connections they need, wires domain,
 * infra and servers, and returns a handle that stops everything gracefully. Used by the CLI and
 * by tests (which pass their own config).
 */
import { createHash } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Config } from './config.js';
import { createDeadLetters } from './domain/dead-letters.js';
import { createInbox } from './domain/inbox.js';
import {
  CHANNELS,
  LANES_BY_URGENCY,
  type Channel,
  type Notification,
} from './domain/notification.js';
import { createNotifications, jobOf, type Notifications } from './domain/notifications.js';
import type { RateLimiter } from './domain/rate-limit-policy.js';
import { SCOPES, createApiKeys, type ApiKeyStore } from './domain/access.js';
import { createAuthenticator, newApiKey } from './infra/auth/api-keys.js';
import { verifyUserToken } from './infra/auth/user-tokens.js';
import { createRedisRateLimiter } from './infra/redis/rate-limiter.js';
import { connectNats } from './infra/nats/connection.js';
import { createApiKeyStore } from './infra/postgres/api-key-store.js';
import { createInboxStore } from './infra/postgres/inbox-store.js';
import { createRecipientStore } from './infra/postgres/recipient-store.js';
import { createRecipients } from './domain/recipients.js';
import { createPreferences } from './domain/preferences.js';
import { createPreferenceStore } from './infra/postgres/preference-store.js';
import { createTemplates } from './domain/templates.js';
import { createTemplateStore } from './infra/postgres/template-store.js';
import { createDeadLetterSink } from './infra/nats/dead-letters.js';
import { createJobPublisher, decodeJob, getJobConsumer } from './infra/nats/job-queue.js';
import { ADVISORY_CONSUMER, advisoryStreamName, type NatsLayout } from './infra/nats/layout.js';
import { createStatusBus } from './infra/nats/status-bus.js';
import { ensureStreams } from './infra/nats/streams.js';
import { createNotificationStore } from './infra/postgres/notification-store.js';
import {
  assertSchemaCurrent,
  ensureDatabaseExists,
  migrate,
  openDatabase,
  type Database,
} from './infra/postgres/orm.js';
import { withThrottledWarnings, type Logger } from './logger.js';
import { hostRule, type ResolveHost } from './providers/private-addresses.js';
import { providerEntriesFor } from './providers/registry.js';
import { createGateway } from './graphql/gateway.js';
import { createMaxDeliveriesHandler } from './scheduler/max-deliveries.js';
import { createScheduler, type Scheduler } from './scheduler/scheduler.js';
import {
  createApiServer,
  listenProbes,
  type ApiServer,
  type ReadinessReport,
} from './server/api-server.js';
import {
  createChannelWorker,
  type ChannelWorker,
  type CrashPoint,
} from './workers/channel-worker.js';
import { createProviderChain } from './workers/provider-chain.js';

export type Role = 'api' | 'worker' | 'scheduler';

export interface HeraldOptions {
  config: Config;
  logger: Logger;
  roles: readonly Role[];
  /** Channels the worker role serves (default: config.worker.channels). */
  channels?: readonly Channel[];
  /**
   * Development: when the tenant has no active API key, create one with every scope and return it
   * (once) as `developmentKey`.
   */
  developmentKey?: boolean;
  /** Called at a crash point when config.worker.crashAt names it (tests only). */
  crash?: (point: CrashPoint | 'mid-sweep') => void;
  /** Resolves the host names of webhook `to` URLs (tests: a fixed table); default the system's. */
  resolveHost?: ResolveHost;
}

export interface Herald {
  notifications: Notifications;
  /** The api's ports, when this process runs the api. */
  ports: { h2cPort: number; httpPort: number } | null;
  /** The probes' port (/healthz, /readyz), when this process runs no api. */
  adminPort: number | null;
  scheduler: Scheduler | null;
  /** The development API key created at this start, if any (shown once). */
  developmentKey: string | null;
  /** Graceful stop: intake first, then in-flight work, then connections. */
  stop(): Promise<void>;
}

/** Creates the database if needed and applies migrations. */
export async function runMigrations(config: Config, logger: Logger): Promise<string[]> {
  if (config.env !== 'production' && (await ensureDatabaseExists(config.database.url))) {
    logger.info({}, 'created the database');
  }
  const db = await openDatabase(config.database, logger);
  try {
    const applied = await migrate(db);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema is up to date');
    return applied;
  } finally {
    await db.close();
  }
}

export async function startHerald(options: HeraldOptions): Promise<Herald> {
  const { config, logger, roles } = options;
  const layout: NatsLayout = {
    subjectPrefix: config.nats.subjectPrefix,
    streamPrefix: config.nats.streamPrefix,
  };
  const closers: (() => Promise<void>)[] = [];
  // Providers first: a misconfigured one stops the process before it connects to anything.
  const channels = roles.includes('worker') ? (options.channels ?? config.worker.channels) : [];
  const chains = channels.map((channel) => ({
    channel,
    providers: createProviderChain(
      providerEntriesFor(channel, config.providers, {
        breaker: config.worker.breaker,
        concurrency: config.worker.concurrency[channel],
        logFile: config.logProviderFile,
        allowLogFallback: config.env !== 'production',
        webhookPrivateAddresses: config.webhookPrivateAddresses,
        resolveHost: options.resolveHost,
      }),
      logger.child({ channel }),
    ),
  }));
  // Closed last (closers run in reverse), after the workers that use them have stopped.
  closers.push(async () => {
    await Promise.all(chains.map((c) => c.providers.close()));
  });
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) => logger.warn({ err }, 'error while closing'));
    }
  };

  try {
    const db: Database = await openDatabase(config.database, logger);
    closers.push(() => db.close());
    await assertSchemaCurrent(db);
    const nc: NatsConnection = await connectNats({
      servers: config.nats.url,
      name: `herald-${roles.join('+')}`,
      logger,
    });
    closers.push(() => nc.drain().catch(() => nc.close()));
    const jsm = await jetstreamManager(nc);
    await ensureStreams(jsm, layout, {
      // Every channel: the api publishes to any of them, whatever this process's workers serve.
      channels: CHANNELS,
      duplicateWindowMs: config.worker.duplicateWindowMs,
      ackWaitMs: config.worker.ackWaitMs,
      maxDeliver: config.worker.maxDeliver,
      replicas: config.nats.replicas,
      deadLetterMaxAgeMs: config.worker.deadLetterMaxAgeMs,
    });
    const js = jetstream(nc);
    const store = createNotificationStore(db.pool);
    const events = createStatusBus(nc, layout, { logger });
    const deadLetters = createDeadLetterSink(js, jsm, layout, logger);
    const queue = createJobPublisher(js, layout);
    const rateLimiter =
      roles.includes('api') && config.rateLimit.enabled ? openRateLimiter(config, logger) : null;
    if (rateLimiter !== null) closers.push(() => rateLimiter.close());
    const recipientStore = createRecipientStore(db.pool);
    const preferences = createPreferences({
      store: createPreferenceStore(db.pool),
      defaultQuietHours: config.defaultQuietHours,
    });
    const templates = createTemplates(createTemplateStore(db.pool));
    const notifications = createNotifications({
      store,
      queue,
      rateLimiter,
      recipients: recipientStore,
      preferences,
      templates,
      sendRules: config.webhookPrivateAddresses === 'deny' ? { webhookUrl: hostRule } : {},
      events,
      // A NATS outage fails every Send's publish: one warning per 5 s, not one per Send.
      logger: withThrottledWarnings(logger),
      hash: (s) => createHash('sha256').update(s).digest('hex'),
      // Well inside the outbox grace, after which the scheduler republishes unstamped rows.
      stampDelayMs: Math.min(1_000, config.scheduler.outboxGraceMs / 2),
    });
    closers.push(() => notifications.drain());
    const deadLetterCases = createDeadLetters({
      store,
      dispatch: notifications.dispatch,
      sink: deadLetters,
      events,
      logger,
    });

    let api: ApiServer | null = null;
    const readiness = async (): Promise<ReadinessReport> => {
      const checks: Record<string, string> = {};
      try {
        await db.pool.query('select 1');
        checks.postgres = 'ok';
      } catch (err) {
        checks.postgres = (err as Error).message;
      }
      checks.nats = nc.isClosed() ? 'closed' : nc.isDraining() ? 'draining' : 'ok';
      const ready = Object.values(checks).every((c) => c === 'ok');
      // Redis holds only rate-limit windows: its failures are counted, not a reason to stop
      // taking traffic (HERALD_RATE_LIMIT_ON_REDIS_ERROR decides what Sends get meanwhile).
      const counters: Record<string, number> = {};
      if (rateLimiter !== null) counters.rateLimitRedisFailures = rateLimiter.redisFailures;
      if (api !== null) counters.watchStreams = api.openWatches();
      return { ready, checks, counters };
    };

    let ports: Herald['ports'] = null;
    const keyStore = createApiKeyStore(db.pool);
    // Made by whichever process the CLI asks, api or not (with several api processes, the
    // primary makes it once, before they start).
    const developmentKey =
      options.developmentKey === true && config.auth.required
        ? await ensureDevelopmentKey(keyStore, config.tenant)
        : null;
    if (roles.includes('api')) {
      const authenticator = createAuthenticator({
        keys: keyStore,
        verifyUserToken: (token) => verifyUserToken(token, { master: config.auth.tokenSecret }),
        cacheMs: config.auth.keyCacheMs,
        disabledForTenant: config.auth.required ? null : config.tenant,
      });
      if (!config.auth.required) {
        logger.warn(
          { tenant: config.tenant },
          'authentication is OFF (HERALD_AUTH=off): every caller is this tenant',
        );
      }
      const server = createApiServer({
        notifications,
        deadLetters: deadLetterCases,
        apiKeys: createApiKeys({
          store: keyStore,
          newApiKey,
          onRevoked: (prefix) => authenticator.forget(prefix),
        }),
        recipients: createRecipients(recipientStore),
        preferences,
        templates,
        inbox: createInbox({ store: createInboxStore(db.pool), events }),
        authenticator,
        callsPerSecond: config.auth.callsPerSecond,
        logger,
        readiness,
        maxRequestBytes: config.api.maxRequestBytes,
        maxTimeoutMs: config.api.maxTimeoutMs,
        headersTimeoutMs: config.api.headersTimeoutMs,
        requestTimeoutMs: config.api.requestTimeoutMs,
        h2cIdleTimeoutMs: config.api.h2cIdleTimeoutMs,
        grpcUnaryFastPath: config.api.grpcFastPath,
      });
      api = server;
      // Registered before listen so a failed listen still closes what did open.
      closers.push(() => server.close());
      ports = await server.listen(config.api);
    }

    if (roles.includes('worker')) {
      const workers: ChannelWorker[] = [];
      for (const { channel, providers } of chains) {
        const lanes = await Promise.all(
          LANES_BY_URGENCY.map(async (lane) => ({
            lane,
            consumer: await getJobConsumer(js, layout, channel, lane),
          })),
        );
        const worker = createChannelWorker({
          channel,
          lanes,
          decodeJob,
          store,
          providers,
          deadLetters,
          forgetAddress: (tenantId, userId, token) =>
            recipientStore.removePushToken(tenantId, userId, token),
          events,
          logger: logger.child({ channel }),
          retry: config.worker.retry,
          leaseMs: config.worker.ackWaitMs,
          providerTimeoutMs: config.worker.providerTimeoutMs,
          concurrency: config.worker.concurrency[channel],
          crash: (point) => {
            if (config.worker.crashAt === point) options.crash?.(point);
          },
        });
        worker.start();
        workers.push(worker);
      }
      closers.push(async () => {
        // Half the shutdown budget for in-flight deliveries; the rest releases and closes.
        await Promise.all(workers.map((w) => w.stop(config.shutdownTimeoutMs / 2)));
      });
      logger.info(
        { providers: Object.fromEntries(chains.map((c) => [c.channel, c.providers.names])) },
        'workers started',
      );
    }

    let adminPort: number | null = null;
    if (!roles.includes('api')) {
      const probes = await listenProbes(readiness, config.api.host, config.adminPort);
      closers.push(() => probes.close());
      adminPort = probes.port;
    }

    let scheduler: Scheduler | null = null;
    if (roles.includes('scheduler')) {
      // Test-only fault: publish half of the sweep's rows, then die before stamping any (R4).
      const dispatch =
        config.worker.crashAt === 'mid-sweep'
          ? async (rows: readonly Notification[]) => {
              const half = rows.slice(0, Math.ceil(rows.length / 2));
              await Promise.all(half.map((n) => queue.publish(jobOf(n))));
              options.crash?.('mid-sweep');
            }
          : notifications.dispatch;
      const s = createScheduler({
        store,
        events,
        dispatch,
        logger,
        preferences,
        intervalMs: config.scheduler.intervalMs,
        outboxGraceMs: config.scheduler.outboxGraceMs,
        staleAfterMs: config.scheduler.staleAfterMs,
        idempotencyTtlMs: config.scheduler.idempotencyTtlMs,
        maxAttempts: config.worker.retry.maxAttempts,
        deadLetters,
      });
      s.start();
      closers.push(() => s.stop());
      const maxDeliveries = createMaxDeliveriesHandler({
        consumer: await js.consumers.get(advisoryStreamName(layout), ADVISORY_CONSUMER),
        jsm,
        store,
        events,
        deadLetters,
        dispatch: notifications.dispatch,
        maxAttempts: config.worker.retry.maxAttempts,
        logger,
      });
      maxDeliveries.start();
      closers.push(() => maxDeliveries.stop());
      scheduler = s;
      logger.info({ intervalMs: config.scheduler.intervalMs }, 'scheduler started');
    }

    return { notifications, ports, adminPort, scheduler, developmentKey, stop: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** A key with every scope for the development tenant, unless it already has an active one. */
async function ensureDevelopmentKey(store: ApiKeyStore, tenant: string): Promise<string | null> {
  if ((await store.countActive(tenant)) > 0) return null;
  await store.ensureTenant(tenant, `${tenant} (development)`);
  const { apiKey, record } = newApiKey(tenant, 'development', SCOPES);
  await store.insert(record);
  return apiKey;
}

/**
 * The Redis-backed send limiter. Redis being down at start does not stop the api: the limiter
 * decides as configured (HERALD_RATE_LIMIT_ON_REDIS_ERROR) until it is back.
 */
function openRateLimiter(config: Config, logger: Logger): RateLimiter & { close(): Promise<void> } {
  const redis = new Redis(config.rateLimit.redisUrl, {
    enableOfflineQueue: false,
    // The limiter's calls of one event-loop turn go to Redis in one write (and one read back).
    enableAutoPipelining: true,
    // No commandTimeout: the limiter bounds each call itself (timeoutMs), and ioredis's would add
    // a second timer per command (and a `delete` that turns each command object into a slow one).
    connectTimeout: 2_000,
    maxRetriesPerRequest: 1,
    // Reconnect forever, at most every 2 s.
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
  let lastWarned = 0;
  let closing = false;
  redis.on('error', (err: Error) => {
    // The limiter reports failures per call; this only keeps the connection's own errors quiet.
    // Closing while the connection is still being set up (a start-up that failed elsewhere) fails
    // its set-up commands: not news about Redis.
    if (closing) return;
    if (Date.now() - lastWarned > 10_000) {
      lastWarned = Date.now();
      logger.warn({ err: err.message }, 'Redis connection error (rate limits)');
    }
  });
  const limiter = createRedisRateLimiter({
    redis,
    policies: config.rateLimit.policies,
    keyPrefix: `${config.rateLimit.redisPrefix}:rl`,
    onRedisError: config.rateLimit.onRedisError,
    logger,
  });
  return {
    take: (key) => limiter.take(key),
    get redisFailures() {
      return limiter.redisFailures;
    },
    async close() {
      closing = true;
      await limiter.close();
      redis.disconnect();
    },
  };
}

/**
 * The GraphQL gateway (`herald gateway`, and part of `herald all`): a client of the api at
 * `apiUrl` (default: config.gateway.apiUrl, else the api's configured h2c port).
 */
export async function startGateway(
  config: Config,
  logger: Logger,
  apiUrl?: string,
): Promise<{
  port: number;
  /** The gateway's fetch handler, without a port (tests). */
  fetch: (request: Request) => Promise<Response>;
  stop(): Promise<void>;
}> {
  const gateway = createGateway({
    apiUrl: apiUrl ?? config.gateway.apiUrl ?? `http://${config.api.host}:${config.api.h2cPort}`,
    logger,
    production: config.gateway.production,
    maxSubscriptionsPerCaller: config.gateway.maxSubscriptionsPerCaller,
    maxBatch: config.gateway.maxBatch,
  });
  const port = await gateway.listen(config.api.host, config.gateway.port);
  return { port, fetch: gateway.fetch, stop: () => gateway.close() };
}
