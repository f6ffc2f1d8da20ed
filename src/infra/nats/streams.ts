/**
 * Creating the job streams and their consumers at startup. Idempotent: unchanged config is left
 * alone, changed config is updated, and the result is read back and compared with what was asked
 * for, because a server that does not know an option (nats-server 2.9 and a 2.10+ field) drops it
 * silently instead of failing.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import type {
  ConsumerConfig,
  ConsumerInfo,
  JetStreamManager,
  StreamConfig,
  StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { CHANNELS, LANES_BY_URGENCY } from '../../domain/notification.js';
import type { Channel } from '../../domain/notification.js';
import {
  ADVISORY_CONSUMER,
  advisoryStreamName,
  consumerName,
  deadLetterStreamName,
  deadLetterSubjects,
  jobSubject,
  jobSubjects,
  maxDeliveriesSubject,
  streamName,
} from './layout.js';
import type { NatsLayout } from './layout.js';

export interface EnsureStreamsOptions {
  channels: readonly Channel[];
  /** How long JetStream remembers a `Nats-Msg-Id` to drop a re-publish. */
  duplicateWindowMs: number;
  /** How long a delivered job may stay unacked before it is redelivered. */
  ackWaitMs: number;
  /** Deliveries per job, after which the server gives up on it (and sends an advisory). */
  maxDeliver: number;
  /** Unacked jobs one consumer may have out at once. Default 1000. */
  maxAckPending?: number;
  /** Default 1. */
  replicas?: number;
  /** Default `file`. */
  storage?: 'file' | 'memory';
  /** How long the dead-letter stream keeps a copy. Default 30 days. */
  deadLetterMaxAgeMs?: number;
}

/** What {@link ensureStreams} had to change; both empty when everything was already in place. */
export interface EnsureStreamsResult {
  /** `stream <name>` or `consumer <stream>/<name>`. */
  created: string[];
  updated: string[];
}

const STREAM_NOT_FOUND = 10059;
const STREAM_NAME_EXISTS = 10058;
const CONSUMER_NOT_FOUND = 10014;

type WantedStream = Pick<
  StreamConfig,
  'name' | 'subjects' | 'retention' | 'storage' | 'duplicate_window' | 'discard' | 'num_replicas'
> &
  Partial<Pick<StreamConfig, 'max_age'>>;
type WantedConsumer = Pick<
  ConsumerConfig,
  | 'durable_name'
  | 'filter_subject'
  | 'ack_policy'
  | 'ack_wait'
  | 'max_deliver'
  | 'deliver_policy'
  | 'max_ack_pending'
  | 'replay_policy'
>;

/** Fields a stream update may change; the rest (retention, storage) are fixed at creation. */
const STREAM_UPDATABLE = [
  'subjects',
  'duplicate_window',
  'discard',
  'num_replicas',
  'max_age',
] as const;
/** Fields a consumer update may change on 2.9. */
const CONSUMER_UPDATABLE = ['ack_wait', 'max_deliver', 'max_ack_pending'] as const;

/**
 * Creates or updates, per channel, the work-queue stream `streamName(layout, channel)` and one
 * durable pull consumer per lane, then reads every one back and throws an Error listing each
 * option the server does not report as requested.
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  layout: NatsLayout,
  opts: EnsureStreamsOptions,
): Promise<EnsureStreamsResult> {
  const result: EnsureStreamsResult = { created: [], updated: [] };
  const mismatches: string[] = [];
  for (const channel of opts.channels) {
    const wanted = wantedStream(layout, channel, opts);
    const info = await ensureStream(jsm, wanted, result);
    mismatches.push(...compare(`stream ${wanted.name}`, wanted, info.config));
    for (const lane of LANES_BY_URGENCY) {
      const wantedC = wantedConsumer(layout, channel, lane, opts);
      const ci = await ensureConsumer(jsm, wanted.name, wantedC, result);
      const label = `consumer ${wanted.name}/${wantedC.durable_name}`;
      mismatches.push(...compare(label, wantedC, ci.config));
      // Not a requested option but an absent one: on 2.9 a backoff silently replaces ack_wait.
      if ((ci.config.backoff?.length ?? 0) > 0) {
        mismatches.push(`${label}: backoff is ${JSON.stringify(ci.config.backoff)}, expected none`);
      }
    }
  }
  // The dead-letter stream, and the stream that captures max-deliveries advisories (core NATS
  // messages, lost if nobody listens) with the scheduler's consumer of it.
  for (const wanted of [wantedDeadLetterStream(layout, opts), wantedAdvisoryStream(layout, opts)]) {
    const info = await ensureStream(jsm, wanted, result);
    mismatches.push(...compare(`stream ${wanted.name}`, wanted, info.config));
  }
  const advisories = advisoryStreamName(layout);
  const wantedA = wantedAdvisoryConsumer(opts);
  const ai = await ensureConsumer(jsm, advisories, wantedA, result);
  mismatches.push(...compare(`consumer ${advisories}/${ADVISORY_CONSUMER}`, wantedA, ai.config));
  if (mismatches.length > 0) {
    throw new Error(`NATS config was not applied as requested:\n${mismatches.join('\n')}`);
  }
  return result;
}

function wantedDeadLetterStream(layout: NatsLayout, opts: EnsureStreamsOptions): WantedStream {
  return {
    name: deadLetterStreamName(layout),
    subjects: [deadLetterSubjects(layout)],
    retention: RetentionPolicy.Limits,
    storage: opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
    duplicate_window: nanos(opts.duplicateWindowMs),
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas ?? 1,
    max_age: nanos(opts.deadLetterMaxAgeMs ?? 30 * 86_400_000),
  };
}

function wantedAdvisoryStream(layout: NatsLayout, opts: EnsureStreamsOptions): WantedStream {
  return {
    name: advisoryStreamName(layout),
    // Every channel's, whatever this process serves: the scheduler handles them all.
    subjects: CHANNELS.map((c) => maxDeliveriesSubject(layout, c)),
    retention: RetentionPolicy.Workqueue,
    storage: opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
    duplicate_window: nanos(opts.duplicateWindowMs),
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas ?? 1,
  };
}

function wantedAdvisoryConsumer(opts: EnsureStreamsOptions): WantedConsumer {
  return {
    durable_name: ADVISORY_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(opts.ackWaitMs),
    max_deliver: -1,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: 100,
    replay_policy: ReplayPolicy.Instant,
  };
}

/**
 * Deletes the channels' streams, the dead-letter and advisory streams (and with them their
 * consumers); absent streams are fine.
 */
export async function deleteStreams(
  jsm: JetStreamManager,
  layout: NatsLayout,
  channels: readonly Channel[],
): Promise<void> {
  const names = [
    ...channels.map((c) => streamName(layout, c)),
    deadLetterStreamName(layout),
    advisoryStreamName(layout),
  ];
  for (const name of names) {
    try {
      await jsm.streams.delete(name);
    } catch (err) {
      if (!isApiError(err, STREAM_NOT_FOUND)) throw err;
    }
  }
}

function wantedStream(
  layout: NatsLayout,
  channel: Channel,
  opts: EnsureStreamsOptions,
): WantedStream {
  return {
    name: streamName(layout, channel),
    subjects: [jobSubjects(layout, channel)],
    retention: RetentionPolicy.Workqueue,
    storage: opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
    duplicate_window: nanos(opts.duplicateWindowMs),
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas ?? 1,
  };
}

function wantedConsumer(
  layout: NatsLayout,
  channel: Channel,
  lane: (typeof LANES_BY_URGENCY)[number],
  opts: EnsureStreamsOptions,
): WantedConsumer {
  return {
    durable_name: consumerName(channel, lane),
    filter_subject: jobSubject(layout, channel, lane),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(opts.ackWaitMs),
    max_deliver: opts.maxDeliver,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: opts.maxAckPending ?? 1000,
    replay_policy: ReplayPolicy.Instant,
  };
}

async function ensureStream(
  jsm: JetStreamManager,
  wanted: WantedStream,
  result: EnsureStreamsResult,
): Promise<StreamInfo> {
  const label = `stream ${wanted.name}`;
  let existing = await streamInfo(jsm, wanted.name);
  if (!existing) {
    try {
      const info = await jsm.streams.add(wanted);
      result.created.push(label);
      return info;
    } catch (err) {
      // Another process created it between our info and add: fall through to the update path.
      if (!isApiError(err, STREAM_NAME_EXISTS)) throw err;
      existing = await jsm.streams.info(wanted.name);
    }
  }
  const fixed = compare(label, pick(wanted, ['retention', 'storage']), existing.config);
  if (fixed.length > 0) {
    throw new Error(
      `${fixed.join('; ')}; these cannot be changed in place, delete the stream to recreate it`,
    );
  }
  const changes = pick(wanted, STREAM_UPDATABLE);
  if (compare(label, changes, existing.config).length === 0) return existing;
  const info = await jsm.streams.update(wanted.name, changes);
  result.updated.push(label);
  return info;
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  wanted: WantedConsumer,
  result: EnsureStreamsResult,
): Promise<ConsumerInfo> {
  const name = wanted.durable_name ?? '';
  const label = `consumer ${stream}/${name}`;
  const existing = await consumerInfo(jsm, stream, name);
  if (!existing) {
    // On 2.9 a create of an existing durable is an upsert, so a concurrent creator is harmless.
    const info = await jsm.consumers.add(stream, wanted);
    result.created.push(label);
    return info;
  }
  const fixed = compare(
    label,
    pick(wanted, ['filter_subject', 'ack_policy', 'deliver_policy', 'replay_policy']),
    existing.config,
  );
  if (fixed.length > 0) {
    throw new Error(
      `${fixed.join('; ')}; these cannot be changed in place, delete the consumer to recreate it`,
    );
  }
  const changes: Partial<ConsumerConfig> = pick(wanted, CONSUMER_UPDATABLE);
  const hasBackoff = (existing.config.backoff?.length ?? 0) > 0;
  if (hasBackoff) changes.backoff = [];
  if (!hasBackoff && compare(label, changes, existing.config).length === 0) return existing;
  const info = await jsm.consumers.update(stream, name, changes);
  result.updated.push(label);
  return info;
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (isApiError(err, STREAM_NOT_FOUND)) return undefined;
    throw err;
  }
}

async function consumerInfo(
  jsm: JetStreamManager,
  stream: string,
  name: string,
): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, name);
  } catch (err) {
    if (isApiError(err, CONSUMER_NOT_FOUND)) return undefined;
    throw err;
  }
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/** The `keys` of `obj` that are set (an unset option is not compared or sent). */
function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** One line per option of `wanted` that `actual` does not hold. */
function compare(label: string, wanted: object, actual: object): string[] {
  const got = actual as Record<string, unknown>;
  return Object.entries(wanted).flatMap(([key, value]) =>
    sameValue(value, got[key])
      ? []
      : [
          `${label}: ${key} is ${JSON.stringify(got[key]) ?? 'not set'}, expected ${JSON.stringify(value)}`,
        ],
  );
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  }
  return a === b;
}
