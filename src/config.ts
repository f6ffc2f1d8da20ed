/**
 * The one typed configuration, read from environment variables and validated at start-up. Every
 * bad variable is reported at once. Nothing else reads process.env.
 */
import { z } from 'zod';
import { CHANNELS, type Channel } from './domain/notification.js';
import {
  DEFAULT_RATE_LIMIT_POLICIES,
  rateLimitPolicyConfig,
  type RateLimitPolicies,
} from './domain/rate-limit-policy.js';
import { readProvidersConfig, type ProvidersConfig } from './providers/registry.js';
import type { QuietHours } from './domain/preferences.js';
import { parseWindowText } from './domain/quiet-hours.js';

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');

const channelList = z
  .string()
  .default(CHANNELS.join(','))
  .transform((s) =>
    s
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
  )
  .pipe(z.array(z.enum(CHANNELS)).min(1, 'at least one channel'));

/** Variable name -> schema. The README's configuration table lists the same variables. */
const schema = z.object({
  HERALD_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HERALD_LOG_LEVEL: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info'),
  HERALD_DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/herald'),
  HERALD_DATABASE_POOL_SIZE: int(10, 1),
  HERALD_NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  HERALD_NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('herald'),
  HERALD_NATS_STREAM_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('HERALD'),
  HERALD_NATS_REPLICAS: int(1, 1),
  HERALD_API_HOST: z.string().min(1).default('127.0.0.1'),
  HERALD_API_H2C_PORT: int(8080),
  HERALD_API_HTTP_PORT: int(8081),
  /** api processes sharing the api's ports (`herald api` and `herald all`); 1 runs it in-process. */
  HERALD_API_PROCESSES: z.coerce.number().int().min(1).max(64).default(1),
  HERALD_ADMIN_PORT: int(8082),
  HERALD_GATEWAY_PORT: int(8083),
  /** The api the gateway calls; default the local api's h2c port. */
  HERALD_GATEWAY_API_URL: z.url().optional(),
  HERALD_GATEWAY_MAX_SUBSCRIPTIONS: int(20, 1),
  HERALD_GATEWAY_MAX_BATCH: int(10, 1),
  HERALD_MAX_REQUEST_BYTES: int(1_048_576, 1024),
  HERALD_MAX_TIMEOUT_MS: int(30_000, 100),
  /** Slow clients: the most receiving a request's headers (HTTP/1.1), or a whole request, may take. */
  HERALD_HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100),
  HERALD_HTTP_REQUEST_TIMEOUT_MS: int(30_000, 100),
  /** An h2c session without an open stream for this long is closed (GOAWAY). */
  HERALD_H2C_IDLE_TIMEOUT_MS: int(60_000, 100),
  /** `on`: plain unary gRPC calls skip Connect's request pipeline (server/grpc-unary.ts). */
  HERALD_GRPC_FAST_PATH: z.enum(['on', 'off']).default('on'),
  HERALD_TENANT: z.string().min(1).default('dev'),
  /** `required` (always in production) or `off`: every caller is HERALD_TENANT with all scopes. */
  HERALD_AUTH: z.enum(['required', 'off']).default('required'),
  /** Master secret the per-tenant user-token secrets derive from; required in production. */
  HERALD_TOKEN_SECRET: z.string().min(32).optional(),
  HERALD_KEY_CACHE_MS: int(5_000, 0),
  HERALD_CALLS_PER_SECOND: int(200, 1),
  HERALD_IDEMPOTENCY_TTL_MS: int(86_400_000, 1_000),
  /** Quiet hours of tenants that set none, in each recipient's zone: `HH:MM-HH:MM` or `off`. */
  HERALD_DEFAULT_QUIET_HOURS: z
    .string()
    .default('22:00-08:00')
    .transform((s, ctx): QuietHours => {
      if (s === 'off') return { enabled: false };
      const window = parseWindowText(s);
      if (window === null) {
        ctx.addIssue({
          code: 'custom',
          message: `"${s}" is not "off" or two different local times "HH:MM-HH:MM" (e.g. 22:00-08:00)`,
        });
        return z.NEVER;
      }
      return { enabled: true, window };
    }),
  HERALD_REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  HERALD_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('herald'),
  HERALD_RATE_LIMIT_ENABLED: bool(true),
  /** Per-user send limits as JSON (see src/domain/rate-limit-policy.ts); default 10 per minute. */
  HERALD_RATE_LIMITS: z.string().default('{}'),
  HERALD_RATE_LIMIT_ON_REDIS_ERROR: z.enum(['open', 'closed']).default('open'),
  HERALD_WORKER_CHANNELS: channelList,
  /** `256`, or per channel with a default: `email=64,sms=16,256`. */
  HERALD_WORKER_CONCURRENCY: z
    .string()
    .default('256')
    .transform((s, ctx) => {
      const byChannel: Partial<Record<Channel, number>> = {};
      let fallback = 256;
      for (const part of s.split(',').map((p) => p.trim())) {
        const m = /^(?:([a-z_]+)=)?(\d+)$/.exec(part);
        const n = Number(m?.[2]);
        const channel = m?.[1];
        if (
          !m ||
          n < 1 ||
          (channel !== undefined && !(CHANNELS as readonly string[]).includes(channel))
        ) {
          ctx.addIssue({
            code: 'custom',
            message: `"${part}" is not a count >= 1 or <channel>=<count> (channels: ${CHANNELS.join(', ')})`,
          });
          return z.NEVER;
        }
        if (channel === undefined) fallback = n;
        else byChannel[channel as Channel] = n;
      }
      return Object.fromEntries(CHANNELS.map((c) => [c, byChannel[c] ?? fallback])) as Record<
        Channel,
        number
      >;
    }),
  HERALD_ACK_WAIT_MS: int(30_000, 1000),
  HERALD_MAX_DELIVER: int(20, 2),
  HERALD_DUPLICATE_WINDOW_MS: int(600_000, 60_000),
  HERALD_RETRY_BASE_MS: int(1_000, 1),
  HERALD_RETRY_FACTOR: z.coerce.number().min(1).default(2),
  HERALD_RETRY_CAP_MS: int(300_000, 1),
  HERALD_RETRY_MAX_ATTEMPTS: int(6, 1),
  HERALD_PROVIDER_TIMEOUT_MS: int(10_000, 100),
  /** Providers per channel (JSON; see src/providers/registry.ts and the README). */
  HERALD_PROVIDERS_FILE: z.string().default(''),
  HERALD_PROVIDERS: z.string().default(''),
  /** Webhook `to` URLs to private addresses: `deny` (production's default) or `allow`. */
  HERALD_WEBHOOK_PRIVATE_ADDRESSES: z.enum(['deny', 'allow']).optional(),
  HERALD_BREAKER_FAILURES: int(5, 1),
  HERALD_BREAKER_COOLDOWN_MS: int(60_000, 0),
  HERALD_DLQ_MAX_AGE_MS: int(30 * 86_400_000, 60_000),
  HERALD_SWEEP_INTERVAL_MS: int(1_000, 50),
  HERALD_OUTBOX_GRACE_MS: int(5_000, 0),
  HERALD_STALE_AFTER_MS: int(300_000, 1_000),
  HERALD_SHUTDOWN_TIMEOUT_MS: int(10_000, 0),
  HERALD_MIGRATE_ON_START: bool(true),
  HERALD_LOG_PROVIDER_FILE: z.string().default(''),
  /** Test-only fault injection (honoured only when HERALD_ENV=test): crash at a worker step. */
  HERALD_TEST_CRASH_AT: z
    .enum(['', 'after-claim', 'during-provider', 'after-provider', 'after-commit', 'mid-sweep'])
    .default(''),
});

export type Env = z.infer<typeof schema>;

/** The user-token master secret outside production when none is set: public, so never trusted. */
export const DEVELOPMENT_TOKEN_SECRET = 'herald-development-token-secret-do-not-use-in-production';

export interface Config {
  env: Env['HERALD_ENV'];
  logLevel: Env['HERALD_LOG_LEVEL'];
  database: { url: string; poolSize: number; migrateOnStart: boolean };
  nats: { url: string; subjectPrefix: string; streamPrefix: string; replicas: number };
  api: {
    host: string;
    h2cPort: number;
    httpPort: number;
    maxRequestBytes: number;
    maxTimeoutMs: number;
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    h2cIdleTimeoutMs: number;
    /** Plain unary gRPC calls served without Connect's request pipeline. */
    grpcFastPath: boolean;
    /** api processes sharing the ports (node:cluster); 1: the api runs in the process itself. */
    processes: number;
  };
  adminPort: number;
  gateway: {
    /** No introspection, no GraphiQL: HERALD_ENV=production or NODE_ENV=production. */
    production: boolean;
    port: number;
    /** null: the api of this process (herald all) or http://<api host>:<h2c port>. */
    apiUrl: string | null;
    maxSubscriptionsPerCaller: number;
    maxBatch: number;
  };
  tenant: string;
  /** Quiet hours of tenants that set none of their own. */
  defaultQuietHours: QuietHours;
  auth: {
    required: boolean;
    /** Master secret of user tokens; a fixed development one outside production when unset. */
    tokenSecret: string;
    tokenSecretIsDevelopmentDefault: boolean;
    keyCacheMs: number;
    callsPerSecond: number;
  };
  worker: {
    channels: Channel[];
    /** Deliveries in flight per channel. */
    concurrency: Record<Channel, number>;
    ackWaitMs: number;
    maxDeliver: number;
    duplicateWindowMs: number;
    providerTimeoutMs: number;
    retry: { baseMs: number; factor: number; capMs: number; maxAttempts: number };
    breaker: { failures: number; cooldownMs: number };
    deadLetterMaxAgeMs: number;
    crashAt: Env['HERALD_TEST_CRASH_AT'];
  };
  scheduler: {
    intervalMs: number;
    outboxGraceMs: number;
    staleAfterMs: number;
    idempotencyTtlMs: number;
  };
  /** Where the log provider writes deliveries; null for stdout. */
  logProviderFile: string | null;
  /** Providers per channel, in failover order; unconfigured channels use the log provider. */
  providers: ProvidersConfig;
  /**
   * `deny`: a webhook notification's own `to` must not reach private, loopback, link-local or
   * reserved addresses (refused at Send when its host shows it, and when delivering); the
   * providers' configured urls are trusted either way.
   */
  webhookPrivateAddresses: 'deny' | 'allow';
  rateLimit: {
    enabled: boolean;
    redisUrl: string;
    /** Namespace of the limiter's Redis keys. */
    redisPrefix: string;
    policies: RateLimitPolicies;
    onRedisError: 'open' | 'closed';
  };
  shutdownTimeoutMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The HERALD_*_PORT variables set to `port` in `config` (several when they share it), for an
 * "address in use" error to name what to change; empty when none is.
 */
export function portVariables(config: Config, port: number): string[] {
  const ports: [string, number][] = [
    ['HERALD_API_H2C_PORT', config.api.h2cPort],
    ['HERALD_API_HTTP_PORT', config.api.httpPort],
    ['HERALD_ADMIN_PORT', config.adminPort],
    ['HERALD_GATEWAY_PORT', config.gateway.port],
  ];
  return ports.filter(([, p]) => p === port).map(([name]) => name);
}

/** Reads the configuration from `env`; throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k.startsWith('HERALD_') && v !== undefined && v !== ''),
  );
  const parsed = schema.safeParse(cleaned);
  // Provider entries may name other variables (`${SMTP_PASSWORD}`), so they see the whole env.
  const providers = readProvidersConfig(env);
  const rateLimits = readRateLimits(env.HERALD_RATE_LIMITS);
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)),
    ...providers.problems,
    ...rateLimits.problems,
  ];
  if (parsed.success && parsed.data.HERALD_ENV === 'production') {
    // Authentication can never be off, nor rest on a well-known secret, in production.
    if (parsed.data.HERALD_AUTH === 'off') {
      problems.push('HERALD_AUTH: must be required in production');
    }
    if (parsed.data.HERALD_TOKEN_SECRET === undefined) {
      problems.push('HERALD_TOKEN_SECRET: required in production (at least 32 characters)');
    }
  }
  if (
    parsed.success &&
    parsed.data.HERALD_HTTP_HEADERS_TIMEOUT_MS > parsed.data.HERALD_HTTP_REQUEST_TIMEOUT_MS
  ) {
    // The headers are part of the request; node:http refuses the combination too.
    problems.push('HERALD_HTTP_HEADERS_TIMEOUT_MS: must not exceed HERALD_HTTP_REQUEST_TIMEOUT_MS');
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return {
    env: e.HERALD_ENV,
    logLevel: e.HERALD_LOG_LEVEL,
    database: {
      url: e.HERALD_DATABASE_URL,
      poolSize: e.HERALD_DATABASE_POOL_SIZE,
      migrateOnStart: e.HERALD_MIGRATE_ON_START,
    },
    nats: {
      url: e.HERALD_NATS_URL,
      subjectPrefix: e.HERALD_NATS_SUBJECT_PREFIX,
      streamPrefix: e.HERALD_NATS_STREAM_PREFIX,
      replicas: e.HERALD_NATS_REPLICAS,
    },
    api: {
      host: e.HERALD_API_HOST,
      h2cPort: e.HERALD_API_H2C_PORT,
      httpPort: e.HERALD_API_HTTP_PORT,
      maxRequestBytes: e.HERALD_MAX_REQUEST_BYTES,
      maxTimeoutMs: e.HERALD_MAX_TIMEOUT_MS,
      headersTimeoutMs: e.HERALD_HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HERALD_HTTP_REQUEST_TIMEOUT_MS,
      h2cIdleTimeoutMs: e.HERALD_H2C_IDLE_TIMEOUT_MS,
      grpcFastPath: e.HERALD_GRPC_FAST_PATH === 'on',
      processes: e.HERALD_API_PROCESSES,
    },
    adminPort: e.HERALD_ADMIN_PORT,
    gateway: {
      // NODE_ENV is read here too: the usual switch for GraphQL servers' production mode.
      production: e.HERALD_ENV === 'production' || env.NODE_ENV === 'production',
      port: e.HERALD_GATEWAY_PORT,
      apiUrl: e.HERALD_GATEWAY_API_URL ?? null,
      maxSubscriptionsPerCaller: e.HERALD_GATEWAY_MAX_SUBSCRIPTIONS,
      maxBatch: e.HERALD_GATEWAY_MAX_BATCH,
    },
    tenant: e.HERALD_TENANT,
    defaultQuietHours: e.HERALD_DEFAULT_QUIET_HOURS,
    auth: {
      required: e.HERALD_AUTH === 'required',
      tokenSecret: e.HERALD_TOKEN_SECRET ?? DEVELOPMENT_TOKEN_SECRET,
      tokenSecretIsDevelopmentDefault: e.HERALD_TOKEN_SECRET === undefined,
      keyCacheMs: e.HERALD_KEY_CACHE_MS,
      callsPerSecond: e.HERALD_CALLS_PER_SECOND,
    },
    worker: {
      channels: e.HERALD_WORKER_CHANNELS,
      concurrency: e.HERALD_WORKER_CONCURRENCY,
      ackWaitMs: e.HERALD_ACK_WAIT_MS,
      maxDeliver: e.HERALD_MAX_DELIVER,
      duplicateWindowMs: e.HERALD_DUPLICATE_WINDOW_MS,
      providerTimeoutMs: e.HERALD_PROVIDER_TIMEOUT_MS,
      retry: {
        baseMs: e.HERALD_RETRY_BASE_MS,
        factor: e.HERALD_RETRY_FACTOR,
        capMs: e.HERALD_RETRY_CAP_MS,
        maxAttempts: e.HERALD_RETRY_MAX_ATTEMPTS,
      },
      breaker: { failures: e.HERALD_BREAKER_FAILURES, cooldownMs: e.HERALD_BREAKER_COOLDOWN_MS },
      deadLetterMaxAgeMs: e.HERALD_DLQ_MAX_AGE_MS,
      crashAt: e.HERALD_ENV === 'test' ? e.HERALD_TEST_CRASH_AT : '',
    },
    scheduler: {
      intervalMs: e.HERALD_SWEEP_INTERVAL_MS,
      outboxGraceMs: e.HERALD_OUTBOX_GRACE_MS,
      staleAfterMs: e.HERALD_STALE_AFTER_MS,
      idempotencyTtlMs: e.HERALD_IDEMPOTENCY_TTL_MS,
    },
    logProviderFile: e.HERALD_LOG_PROVIDER_FILE === '' ? null : e.HERALD_LOG_PROVIDER_FILE,
    providers: providers.config,
    webhookPrivateAddresses:
      e.HERALD_WEBHOOK_PRIVATE_ADDRESSES ?? (e.HERALD_ENV === 'production' ? 'deny' : 'allow'),
    rateLimit: {
      enabled: e.HERALD_RATE_LIMIT_ENABLED,
      redisUrl: e.HERALD_REDIS_URL,
      redisPrefix: e.HERALD_REDIS_PREFIX,
      policies: rateLimits.policies,
      onRedisError: e.HERALD_RATE_LIMIT_ON_REDIS_ERROR,
    },
    shutdownTimeoutMs: e.HERALD_SHUTDOWN_TIMEOUT_MS,
  };
}

/** HERALD_RATE_LIMITS: JSON policies; every problem named with its path. */
function readRateLimits(text: string | undefined): {
  policies: RateLimitPolicies;
  problems: string[];
} {
  if (text === undefined || text.trim() === '') {
    return { policies: DEFAULT_RATE_LIMIT_POLICIES, problems: [] };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return {
      policies: DEFAULT_RATE_LIMIT_POLICIES,
      problems: [`HERALD_RATE_LIMITS: not valid JSON: ${(err as Error).message}`],
    };
  }
  const parsed = rateLimitPolicyConfig.safeParse(raw);
  if (parsed.success) return { policies: parsed.data, problems: [] };
  return {
    policies: DEFAULT_RATE_LIMIT_POLICIES,
    problems: parsed.error.issues.map(
      (i) => `${['HERALD_RATE_LIMITS', ...i.path].join('.')}: ${i.message}`,
    ),
  };
}
