// Load generator for a running `herald all`: Sends over gRPC, deliveries observed through
// WatchNotifications. `npm run bench -- --help` for the options; bench/README.md for what it measures.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ConnectError } from '@connectrpc/connect';
import { Channel, NotificationStatus, createHeraldClient } from '@herald/client';
import type { HeraldClient } from '@herald/client';
import { z } from 'zod';
import {
  CLIENTS,
  clientName,
  createSenders,
  type Send,
  type SendRequestInit,
  type Senders,
} from './senders.js';
import { requireSupportedNode } from '../src/runtime.js';

const usage = `Usage: npm run bench -- [options]

  --url <url>              api base URL, loopback only (default http://127.0.0.1:8080)
  --concurrency <n>        Sends in flight at once (default 200)
  --connections <n>        clients, each with its own HTTP/2 session (default 4)
  --client <name>          herald (@herald/client) | grpc-js (@grpc/grpc-js) | h2 (gRPC framing on
                           node:http2) for the Sends (default herald)
  --duration <s>           how long to send, in seconds (default 60)
  --warmup <s>             load at the same rate first, left out of the figures (default 30)
  --rate <n>               target Sends per second, open loop; 0 = as fast as possible (default 0)
  --channel <name>         email | sms | push | in_app | webhook (default in_app)
  --to <address>           direct address for channels other than in_app (default: none)
  --users <n>              bench user ids, one WatchNotifications stream each (default 8)
  --drain-timeout <s>      how long to wait for deliveries after sending stops (default 30)
  --send-timeout <ms>      deadline of each Send (default 10000)
  --api-key <key>          API key (default: $HERALD_API_KEY)
`;

const channels = {
  email: Channel.EMAIL,
  sms: Channel.SMS,
  push: Channel.PUSH,
  in_app: Channel.IN_APP,
  webhook: Channel.WEBHOOK,
} as const;

/** Loopback only: this tool must never put load on someone else's server. */
function isLoopbackUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  const host = url.hostname;
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    (host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host))
  );
}

const count = (fallback: number, max: number) =>
  z.coerce.number().int().min(1).max(max).default(fallback);

const configSchema = z.object({
  url: z
    .string()
    .default('http://127.0.0.1:8080')
    .refine(isLoopbackUrl, 'must be an http(s) URL on localhost, 127.0.0.0/8 or [::1]'),
  concurrency: count(200, 100_000),
  connections: count(4, 1_000),
  client: z.enum(CLIENTS).default('herald'),
  duration: z.coerce.number().positive().max(86_400).default(60),
  // 30 s: V8 compiles Herald's hot path with its optimizing compiler about 10 s into a run, all at
  // once (bench/README.md, "Warm-up: V8's optimizing compiler comes late").
  warmup: z.coerce.number().min(0).max(3_600).default(30),
  rate: z.coerce.number().min(0).max(10_000_000).default(0),
  channel: z.enum(['email', 'sms', 'push', 'in_app', 'webhook']).default('in_app'),
  to: z.string().optional(),
  users: count(8, 1_000),
  drainTimeout: z.coerce.number().min(0).max(3_600).default(30),
  sendTimeout: count(10_000, 600_000),
  apiKey: z.string().min(1).optional(),
});

type BenchConfig = z.infer<typeof configSchema>;

/** Latencies in milliseconds, kept whole and sorted once at the end: exact percentiles. */
class LatencyRecorder {
  private values = new Float64Array(4096);
  private size = 0;

  record(ms: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.size++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.values.slice(0, this.size).sort();
    // Nearest-rank percentile.
    const at = (p: number) =>
      sorted.length === 0 ? 0 : round(sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0);
    return {
      count: sorted.length,
      p50: at(0.5),
      p95: at(0.95),
      p99: at(0.99),
      max: at(1),
    };
  }
}

interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

const terminal = new Set([
  NotificationStatus.DELIVERED,
  NotificationStatus.FAILED,
  NotificationStatus.CANCELLED,
  NotificationStatus.SUPPRESSED,
]);

/**
 * Matches the ids Send returned with the states the watch streams report. A terminal state can
 * arrive before the Send response does, so those are held until the id is known.
 */
class DeliveryTracker {
  /** Accepted, not yet in a terminal state: id → when its Send started and returned. */
  readonly pending = new Map<string, { startedAt: number; acceptedAt: number }>();
  private readonly early = new Map<string, { status: NotificationStatus; at: number }>();
  private readonly listeners = new Set<() => void>();
  /** Set during warm-up: every id any watch reported. */
  warmupSeen: Set<string> | undefined;

  readonly acceptToDelivered = new LatencyRecorder();
  readonly sendToDelivered = new LatencyRecorder();
  delivered = 0;
  deliveredBeforeAck = 0;
  failed = 0;
  cancelled = 0;
  suppressed = 0;
  lastDeliveryAt = 0;

  accepted(id: string, startedAt: number, acceptedAt: number): void {
    const early = this.early.get(id);
    if (early) {
      this.early.delete(id);
      this.finish(early.status, startedAt, acceptedAt, early.at);
    } else {
      this.pending.set(id, { startedAt, acceptedAt });
    }
  }

  private forward: DeliveryTracker | undefined;

  /** While set, observations go to `other` instead (the watches report to one tracker). */
  forwardTo(other: DeliveryTracker | undefined): void {
    this.forward = other;
  }

  observed(id: string, status: NotificationStatus, at: number): void {
    if (this.forward) {
      this.forward.observed(id, status, at);
      return;
    }
    this.warmupSeen?.add(id);
    if (terminal.has(status)) {
      const sent = this.pending.get(id);
      if (sent) {
        this.pending.delete(id);
        this.finish(status, sent.startedAt, sent.acceptedAt, at);
      } else if (!this.early.has(id)) {
        this.early.set(id, { status, at });
      }
    }
    for (const listener of this.listeners) listener();
  }

  /** Resolves once `done()` holds, checked after every event; false if `timeoutMs` passes first. */
  async until(done: () => boolean, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (done()) return true;
    const reached = new Promise<true>((resolve) => {
      const listener = () => {
        if (done()) {
          this.listeners.delete(listener);
          resolve(true);
        }
      };
      this.listeners.add(listener);
    });
    const settled = new AbortController();
    const gaveUp = sleep(timeoutMs, false, {
      signal: AbortSignal.any([signal, settled.signal]),
    }).catch(() => false);
    try {
      return await Promise.race([reached, gaveUp]);
    } finally {
      settled.abort();
      this.listeners.clear();
    }
  }

  private finish(status: NotificationStatus, startedAt: number, acceptedAt: number, at: number) {
    switch (status) {
      case NotificationStatus.DELIVERED:
        this.delivered++;
        if (at < acceptedAt) this.deliveredBeforeAck++;
        this.acceptToDelivered.record(Math.max(0, at - acceptedAt));
        this.sendToDelivered.record(at - startedAt);
        this.lastDeliveryAt = Math.max(this.lastDeliveryAt, at);
        break;
      case NotificationStatus.FAILED:
        this.failed++;
        break;
      case NotificationStatus.CANCELLED:
        this.cancelled++;
        break;
      default:
        this.suppressed++;
    }
  }
}

function parseConfig(argv: string[]): BenchConfig | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      concurrency: { type: 'string' },
      connections: { type: 'string' },
      client: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rate: { type: 'string' },
      channel: { type: 'string' },
      to: { type: 'string' },
      users: { type: 'string' },
      'drain-timeout': { type: 'string' },
      'send-timeout': { type: 'string' },
      'api-key': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  const parsed = configSchema.safeParse({
    url: values.url,
    concurrency: values.concurrency,
    connections: values.connections,
    client: values.client,
    duration: values.duration,
    warmup: values.warmup,
    rate: values.rate,
    channel: values.channel,
    to: values.to,
    users: values.users,
    drainTimeout: values['drain-timeout'],
    sendTimeout: values['send-timeout'],
    apiKey: values['api-key'] ?? (process.env.HERALD_API_KEY || undefined),
  });
  if (!parsed.success) {
    throw new Error(`bad options:\n${z.prettifyError(parsed.error)}\n\n${usage}`);
  }
  return parsed.data;
}

function sendRequest(config: BenchConfig, userId: string, seq: number): SendRequestInit {
  const body = `Herald load test notification ${seq}`;
  const content =
    config.channel === 'email'
      ? { subject: 'Herald load test', body }
      : config.channel === 'push' || config.channel === 'in_app'
        ? { title: 'Herald load test', body }
        : { body };
  return {
    userId,
    channel: channels[config.channel],
    content,
    to: config.channel === 'in_app' ? '' : (config.to ?? ''),
    category: 'bench',
  };
}

interface SendPhaseResult {
  issued: number;
  accepted: number;
  behindSchedule: number;
  errors: Record<string, number>;
  acceptLatency: LatencySummary;
  startedAt: number;
  elapsedMs: number;
}

async function sendPhase(
  config: BenchConfig,
  senders: Senders,
  userIds: string[],
  tracker: DeliveryTracker,
  stop: AbortSignal,
): Promise<SendPhaseResult> {
  const acceptLatency = new LatencyRecorder();
  const errors: Record<string, number> = {};
  const durationMs = config.duration * 1000;
  const intervalMs = config.rate > 0 ? 1000 / config.rate : 0;
  let nextSeq = 0;
  let issued = 0;
  let accepted = 0;
  let inFlight = 0;
  const start = performance.now();
  const end = start + durationMs;

  const progress = setInterval(() => {
    const elapsed = (performance.now() - start) / 1000;
    process.stderr.write(
      `[${elapsed.toFixed(0).padStart(4)} s] accepted ${accepted} (${(accepted / elapsed).toFixed(0)}/s)` +
        `  errors ${issued - accepted - inFlight}  in flight ${inFlight}` +
        `  delivered ${tracker.delivered}  awaiting delivery ${tracker.pending.size}\n`,
    );
  }, 5_000);

  const worker = async (send: Send) => {
    for (;;) {
      const seq = nextSeq++;
      let startedAt: number;
      if (intervalMs > 0) {
        // Open loop: every Send has a slot on a fixed schedule, and its latency counts from the
        // slot, so a slow server shows up as latency instead of as fewer, well-behaved samples.
        startedAt = start + seq * intervalMs;
        if (startedAt >= end) return;
        // No abort signal on this timer (a listener per Send costs the generator CPU): a Ctrl-C
        // takes effect after at most concurrency / rate seconds, when the slot comes due.
        const wait = startedAt - performance.now();
        if (wait > 0) await sleep(wait);
        if (stop.aborted || (wait <= 0 && performance.now() >= end)) return;
      } else {
        startedAt = performance.now();
        if (startedAt >= end || stop.aborted) return;
      }

      const userId = userIds[seq % userIds.length] ?? '';
      issued++;
      inFlight++;
      try {
        const res = await send(sendRequest(config, userId, seq));
        const acceptedAt = performance.now();
        accepted++;
        acceptLatency.record(acceptedAt - startedAt);
        tracker.accepted(res.id, startedAt, acceptedAt);
      } catch (err) {
        const code = senders.codeName(err);
        errors[code] = (errors[code] ?? 0) + 1;
      } finally {
        inFlight--;
      }
    }
  };

  try {
    await Promise.all(
      Array.from({ length: config.concurrency }, (_, i) =>
        worker(senders.sends[i % senders.sends.length] as Send),
      ),
    );
  } finally {
    clearInterval(progress);
  }
  const scheduled = intervalMs > 0 ? Math.ceil(durationMs / intervalMs) : issued;
  return {
    issued,
    accepted,
    behindSchedule: Math.max(0, scheduled - issued),
    errors,
    acceptLatency: acceptLatency.summary(),
    startedAt: start,
    elapsedMs: performance.now() - start,
  };
}

/**
 * Proves every watch is live before the measured run: a watch reports live changes only, and the
 * server gives no sign of when its subscription starts. So each user gets a warm-up notification,
 * again every second until its watch has reported one. This also keeps connection set-up out of
 * the numbers.
 */
async function warmUp(
  config: BenchConfig,
  senders: Senders,
  userIds: string[],
  tracker: DeliveryTracker,
  watchProblems: string[],
  stop: AbortSignal,
): Promise<void> {
  const seen = new Set<string>();
  tracker.warmupSeen = seen;
  const waiting = new Set(userIds);
  const userOfWarmup = new Map<string, string>();
  const deadline = performance.now() + 15_000;
  try {
    while (waiting.size > 0 && watchProblems.length === 0 && !stop.aborted) {
      if (performance.now() >= deadline) {
        throw new Error(
          `no watch reported a warm-up notification within 15 s for ${waiting.size} of ` +
            `${userIds.length} users; is a worker for channel ${config.channel} running?`,
        );
      }
      const batch = await Promise.all(
        [...waiting].map(async (userId, i) => {
          const send = senders.sends[i % senders.sends.length] as Send;
          const res = await send(sendRequest(config, userId, -1));
          if (res.status !== NotificationStatus.PENDING) {
            // Quiet hours (22:00-08:00 by default) or preferences would hold the run's traffic.
            throw new Error(
              `a warm-up Send came back ${NotificationStatus[res.status]}, not PENDING: start ` +
                'herald with HERALD_DEFAULT_QUIET_HOURS=off (and no opt-outs for the bench users)',
            );
          }
          userOfWarmup.set(res.id, userId);
          return res.id;
        }),
      );
      await tracker.until(
        () => watchProblems.length > 0 || batch.every((id) => seen.has(id)),
        1_000,
        stop,
      );
      for (const id of seen) waiting.delete(userOfWarmup.get(id) ?? '');
    }
    if (watchProblems.length > 0) {
      throw new Error(`a watch failed: ${watchProblems.join('; ')}`);
    }
  } finally {
    tracker.warmupSeen = undefined;
  }
}

const FINAL_STATUSES = [
  NotificationStatus.DELIVERED,
  NotificationStatus.FAILED,
  NotificationStatus.CANCELLED,
  NotificationStatus.SUPPRESSED,
];

/** Watches one user until `signal` aborts; returns why it ended early, if it did. */
async function watchUser(
  client: HeraldClient,
  userId: string,
  tracker: DeliveryTracker,
  signal: AbortSignal,
): Promise<string | undefined> {
  try {
    for await (const res of client.watchNotifications(
      // Only the final states: the bench needs nothing else, and the server then streams one
      // message per notification instead of one per status change.
      { target: { case: 'userId', value: userId }, initialCount: 0, statuses: FINAL_STATUSES },
      { signal },
    )) {
      if (res.notification) {
        tracker.observed(res.notification.id, res.notification.status, performance.now());
      }
    }
    return signal.aborted ? undefined : `${userId}: the stream ended`;
  } catch (err) {
    return signal.aborted ? undefined : `${userId}: ${ConnectError.from(err).message}`;
  }
}

const pad = (label: string) => `  ${label.padEnd(22)}`;
const num = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 1 });
const latencyLine = (s: LatencySummary) =>
  `p50 ${num(s.p50)}  p95 ${num(s.p95)}  p99 ${num(s.p99)}  max ${num(s.max)}`;

async function main(): Promise<number> {
  requireSupportedNode('bench');
  const config = parseConfig(process.argv.slice(2));
  if (!config) return 0;

  const stopController = new AbortController();
  const stop = stopController.signal;
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('Interrupted: stopping, press Ctrl-C again to quit at once\n');
    stopController.abort();
  };
  process.on('SIGINT', onSigint);

  const runId = Date.now().toString(36);
  const userIds = Array.from({ length: config.users }, (_, i) => `bench-${runId}-${i}`);
  const senders = createSenders(config);
  // Watches get a session of their own so the send traffic cannot delay what they observe.
  const watchClient = createHeraldClient({
    baseUrl: config.url,
    protocol: 'grpc',
    apiKey: config.apiKey,
  });
  const tracker = new DeliveryTracker();
  const watchStop = new AbortController();
  const watchSignal = AbortSignal.any([watchStop.signal, stop]);
  const watchProblems: string[] = [];
  const watches = userIds.map((userId) =>
    watchUser(watchClient, userId, tracker, watchSignal).then((problem) => {
      if (problem) watchProblems.push(problem);
    }),
  );

  try {
    await warmUp(config, senders, userIds, tracker, watchProblems, stop);

    if (config.warmup > 0) {
      // The same load first, so JIT compilation, pool growth and caches are done before
      // anything is measured; its figures go to a tracker of their own and are dropped.
      process.stderr.write(`Warming up for ${config.warmup} s (not measured)\n`);
      const warm = new DeliveryTracker();
      tracker.forwardTo(warm);
      await sendPhase({ ...config, duration: config.warmup }, senders, userIds, warm, stop);
      await warm.until(() => warm.pending.size === 0, config.drainTimeout * 1000, stop);
      tracker.forwardTo(undefined);
    }
    process.stderr.write(
      `Sending for ${config.duration} s to ${config.url} (Ctrl-C stops early)\n`,
    );
    const sent = await sendPhase(config, senders, userIds, tracker, stop);

    const drainStart = performance.now();
    await tracker.until(() => tracker.pending.size === 0, config.drainTimeout * 1000, stop);
    const drainedMs = performance.now() - drainStart;

    const deliveryWindowMs = tracker.lastDeliveryAt - sent.startedAt;
    const result = {
      bench: 'herald-send',
      node: process.version,
      at: new Date().toISOString(),
      url: config.url,
      protocol: 'grpc',
      client: config.client,
      connections: config.connections,
      concurrency: config.concurrency,
      durationS: config.duration,
      warmupS: config.warmup,
      rate: config.rate,
      channel: config.channel,
      users: config.users,
      interrupted,
      sent: sent.issued,
      behindSchedule: sent.behindSchedule,
      accepted: sent.accepted,
      acceptedPerSec: round(sent.accepted / (sent.elapsedMs / 1000), 1),
      errors: sent.errors,
      acceptLatencyMs: sent.acceptLatency,
      delivered: tracker.delivered,
      deliveredPerSec:
        deliveryWindowMs > 0 ? round(tracker.delivered / (deliveryWindowMs / 1000), 1) : 0,
      acceptToDeliveredMs: tracker.acceptToDelivered.summary(),
      sendToDeliveredMs: tracker.sendToDelivered.summary(),
      deliveredBeforeAck: tracker.deliveredBeforeAck,
      failed: tracker.failed,
      suppressed: tracker.suppressed,
      cancelled: tracker.cancelled,
      undelivered: tracker.pending.size,
      drainS: round(drainedMs / 1000, 1),
      watchProblems,
    };

    const errorText =
      Object.entries(sent.errors)
        .sort(([, a], [, b]) => b - a)
        .map(([code, n]) => `${code} ${num(n)}`)
        .join(', ') || 'none';
    const lines = [
      '',
      `Herald load test: gRPC (${clientName(config.client)}) to ${config.url}${interrupted ? ' (interrupted)' : ''}`,
      `  ${config.connections} connections, ${config.concurrency} concurrent, ` +
        `${config.rate > 0 ? `${num(config.rate)} sends/s open loop` : 'as fast as possible'}, ` +
        `${config.duration} s after ${config.warmup} s of warm-up, channel ${config.channel}, ` +
        `${config.users} users`,
      '',
      'Accept (Send RPC)',
      `${pad('sent')}${num(result.sent)}${result.behindSchedule > 0 ? `  (${num(result.behindSchedule)} scheduled but not sent: client behind schedule)` : ''}`,
      `${pad('accepted')}${num(result.accepted)}  (${num(result.acceptedPerSec)}/s)`,
      `${pad('errors')}${errorText}`,
      `${pad('latency ms')}${latencyLine(result.acceptLatencyMs)}`,
      '',
      'Delivery (WatchNotifications)',
      `${pad('delivered')}${num(result.delivered)}  (${num(result.deliveredPerSec)}/s)`,
      `${pad('accept→delivered ms')}${latencyLine(result.acceptToDeliveredMs)}`,
      `${pad('send→delivered ms')}${latencyLine(result.sendToDeliveredMs)}`,
      `${pad('failed/suppr./canc.')}${result.failed} / ${result.suppressed} / ${result.cancelled}`,
      `${pad('undelivered')}${num(result.undelivered)}  (after ${result.drainS} s of a ${config.drainTimeout} s drain)`,
      ...(watchProblems.length > 0 ? [`${pad('watch problems')}${watchProblems.join('; ')}`] : []),
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(result)}\n`);
    return result.accepted > 0 ? 0 : 1;
  } finally {
    watchStop.abort();
    await Promise.all(watches);
    senders.close();
    watchClient.close();
    process.off('SIGINT', onSigint);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
    // Everything is closed by now; this only guards against a forgotten handle keeping us alive.
    setTimeout(() => process.exit(code), 5_000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 5_000).unref();
  },
);
