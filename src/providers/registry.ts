/**
 * Which providers deliver each channel, in failover order. Configured as JSON — in the file named
 * by HERALD_PROVIDERS_FILE, or inline in HERALD_PROVIDERS — shaped
 * `{ "<channel>": [ { "type": "...", ...provider options, "concurrency"?, "breaker"? }, ... ] }`.
 * A string value that is exactly `${NAME}` is replaced by the environment variable NAME, so
 * secrets need not live in the file. Every problem is reported at once, with its path.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { FailedPreconditionError } from '../domain/errors.js';
import { CHANNELS, type Channel } from '../domain/notification.js';
import type { Provider } from '../domain/ports.js';
import type { BreakerOptions } from '../workers/circuit-breaker.js';
import type { ChainEntry } from '../workers/provider-chain.js';
import { createFcmProvider, fcmProviderConfig } from './fcm.js';
import { createInAppProvider } from './in-app.js';
import { createLogProvider } from './log.js';
import type { ResolveHost } from './private-addresses.js';
import { createSmtpProvider, smtpProviderConfig } from './smtp.js';
import { createTwilioProvider, twilioProviderConfig } from './twilio.js';
import {
  createWebhookProvider,
  webhookProviderConfig,
  type WebhookProviderConfig,
} from './webhook.js';

const logProviderConfig = z
  .object({
    type: z.literal('log'),
    name: z.string().min(1).default('log'),
    /** Where delivery lines go; default HERALD_LOG_PROVIDER_FILE, else stdout. */
    file: z.string().min(1).optional(),
  })
  .strict();
const inAppProviderConfig = z
  .object({ type: z.literal('in_app'), name: z.string().min(1).default('in_app') })
  .strict();

/** Provider types by name: how to parse their options and build them. */
const TYPES = {
  smtp: { schema: smtpProviderConfig, create: createSmtpProvider },
  twilio: { schema: twilioProviderConfig, create: createTwilioProvider },
  fcm: {
    schema: fcmProviderConfig,
    create: (c: z.output<typeof fcmProviderConfig>) => createFcmProvider(c),
  },
  // Built by build(), which gives it the chain defaults' private-address rule.
  webhook: { schema: webhookProviderConfig, create: null },
  log: { schema: logProviderConfig, create: null },
  in_app: { schema: inAppProviderConfig, create: null },
} as const;
type ProviderType = keyof typeof TYPES;

/** The provider types each channel accepts. */
const TYPES_BY_CHANNEL: Record<Channel, readonly ProviderType[]> = {
  email: ['smtp', 'log'],
  sms: ['twilio', 'log'],
  push: ['fcm', 'log'],
  webhook: ['webhook', 'log'],
  in_app: ['in_app'],
};

/** Options every provider entry may carry, next to its own. */
const entryCommon = z
  .object({
    concurrency: z.number().int().min(1).optional(),
    breaker: z
      .object({
        failures: z.number().int().min(1).optional(),
        cooldownMs: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export interface ProviderEntry {
  type: ProviderType;
  /** The provider's parsed options (its own schema's output). */
  options: { name: string } & Record<string, unknown>;
  concurrency?: number;
  breaker?: Partial<BreakerOptions>;
}

/** Parsed configuration: the channels it names, each with at least one provider. */
export type ProvidersConfig = Partial<Record<Channel, ProviderEntry[]>>;

/**
 * Reads the providers configuration from HERALD_PROVIDERS_FILE or HERALD_PROVIDERS (not both);
 * `{}` when neither is set. Returns the problems instead of throwing, one per bad value.
 */
export function readProvidersConfig(env: Record<string, string | undefined>): {
  config: ProvidersConfig;
  problems: string[];
} {
  const file = env.HERALD_PROVIDERS_FILE;
  const inline = env.HERALD_PROVIDERS;
  if (file && inline) {
    return {
      config: {},
      problems: ['HERALD_PROVIDERS: set it or HERALD_PROVIDERS_FILE, not both'],
    };
  }
  const source = file ? 'HERALD_PROVIDERS_FILE' : 'HERALD_PROVIDERS';
  let text: string;
  if (file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return {
        config: {},
        problems: [`${source}: cannot read ${file}: ${(err as Error).message}`],
      };
    }
  } else if (inline) {
    text = inline;
  } else {
    return { config: {}, problems: [] };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { config: {}, problems: [`${source}: not valid JSON: ${(err as Error).message}`] };
  }
  return parseProvidersConfig(raw, env, source);
}

export function parseProvidersConfig(
  raw: unknown,
  env: Record<string, string | undefined>,
  source = 'providers',
): { config: ProvidersConfig; problems: string[] } {
  const problems: string[] = [];
  const config: ProvidersConfig = {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { config, problems: [`${source}: must be an object of channel -> provider list`] };
  }
  for (const [channel, list] of Object.entries(raw)) {
    const at = `${source}.${channel}`;
    if (!(CHANNELS as readonly string[]).includes(channel)) {
      problems.push(`${at}: unknown channel (one of ${CHANNELS.join(', ')})`);
      continue;
    }
    if (!Array.isArray(list) || list.length === 0) {
      problems.push(`${at}: must be a non-empty list of providers, in failover order`);
      continue;
    }
    const entries: ProviderEntry[] = [];
    list.forEach((item: unknown, i) => {
      // Where a variable is unset, that is the problem; the empty string standing in for it
      // would only add a second one (too short, not a URL) at the same place.
      const unset = new Set<string>();
      const entry = parseEntry(
        channel as Channel,
        substituteEnv(item, env, `${at}[${i}]`, problems, unset),
        `${at}[${i}]`,
        problems,
        unset,
      );
      if (entry) entries.push(entry);
    });
    const names = entries.map((e) => e.options.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) problems.push(`${at}: provider name ${dup} is used twice`);
    config[channel as Channel] = entries;
  }
  return { config, problems };
}

function parseEntry(
  channel: Channel,
  item: unknown,
  at: string,
  problems: string[],
  unset: ReadonlySet<string>,
): ProviderEntry | null {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    problems.push(`${at}: must be an object with a "type"`);
    return null;
  }
  const { concurrency, breaker, ...rest } = item as Record<string, unknown>;
  const type = rest.type;
  const allowed = TYPES_BY_CHANNEL[channel];
  if (typeof type !== 'string' || !(allowed as readonly string[]).includes(type)) {
    problems.push(`${at}.type: must be one of ${allowed.join(', ')} for ${channel}`);
    return null;
  }
  const common = entryCommon.safeParse({ concurrency, breaker });
  const own = TYPES[type as ProviderType].schema.safeParse(rest);
  for (const result of [common, own]) {
    if (!result.success) {
      for (const issue of result.error.issues) {
        // Written as substituteEnv writes paths (list items as [i]), so `unset` matches them.
        const path = issue.path.reduce<string>(
          (p, key) => (typeof key === 'number' ? `${p}[${key}]` : `${p}.${String(key)}`),
          at,
        );
        if (!unset.has(path)) problems.push(`${path}: ${issue.message}`);
      }
    }
  }
  if (!common.success || !own.success) return null;
  return {
    type: type as ProviderType,
    options: own.data,
    concurrency: common.data.concurrency,
    breaker: common.data.breaker,
  };
}

/**
 * Replaces every string that is exactly `${NAME}` with the environment variable NAME; an unset
 * one is a problem, its path goes into `unset`, and it becomes the empty string.
 */
function substituteEnv(
  value: unknown,
  env: Record<string, string | undefined>,
  at: string,
  problems: string[],
  unset: Set<string>,
): unknown {
  if (typeof value === 'string') {
    const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(value);
    if (!m) return value;
    const name = m[1] as string;
    const v = env[name];
    if (v === undefined) {
      problems.push(`${at}: environment variable ${name} is not set`);
      unset.add(at);
    }
    return v ?? '';
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => substituteEnv(v, env, `${at}[${i}]`, problems, unset));
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        substituteEnv(v, env, `${at}.${k}`, problems, unset),
      ]),
    );
  }
  return value;
}

export interface ChainDefaults {
  breaker: BreakerOptions;
  concurrency: number;
  /** The log provider's file when its entry names none. */
  logFile: string | null;
  /** Whether an unconfigured channel may fall back to the log provider (not in production). */
  allowLogFallback: boolean;
  /** HERALD_WEBHOOK_PRIVATE_ADDRESSES: may a webhook notification's own `to` reach them? */
  webhookPrivateAddresses: 'allow' | 'deny';
  /** How webhook `to` host names are resolved; default the system's resolver. */
  resolveHost?: ResolveHost;
}

/**
 * The providers of `channel`, ready for a ProviderChain. An unconfigured channel gets the log
 * provider (in_app: the in-app provider) unless `allowLogFallback` is false, when it throws.
 */
export function providerEntriesFor(
  channel: Channel,
  config: ProvidersConfig,
  defaults: ChainDefaults,
): ChainEntry[] {
  let entries = config[channel];
  if (entries === undefined) {
    if (channel !== 'in_app' && !defaults.allowLogFallback) {
      throw new FailedPreconditionError(
        `no provider is configured for channel ${channel}: add one to HERALD_PROVIDERS_FILE (or use {"type":"log"} deliberately)`,
      );
    }
    entries = [
      channel === 'in_app'
        ? { type: 'in_app', options: { name: 'in_app' } }
        : { type: 'log', options: { name: 'log' } },
    ];
  }
  return entries.map((e) => ({
    provider: build(e, defaults),
    breaker: { ...defaults.breaker, ...e.breaker },
    concurrency: e.concurrency ?? defaults.concurrency,
  }));
}

function build(e: ProviderEntry, defaults: ChainDefaults): Provider {
  switch (e.type) {
    case 'log': {
      const file = (e.options.file as string | undefined) ?? defaults.logFile ?? undefined;
      return { ...createLogProvider({ file }), name: e.options.name };
    }
    case 'in_app':
      return { ...createInAppProvider(), name: e.options.name };
    case 'webhook':
      return createWebhookProvider(e.options as WebhookProviderConfig, undefined, {
        privateAddresses: defaults.webhookPrivateAddresses,
        resolveHost: defaults.resolveHost,
      });
    default: {
      const create = TYPES[e.type].create as (options: unknown) => Provider;
      return create(e.options);
    }
  }
}
