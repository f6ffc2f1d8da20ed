import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Status } from '@nats-io/nats-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/domain/errors.js';
import type {
  Channel,
  Notification,
  Status as NotificationStatus,
} from '../../src/domain/notification.js';
import type { StatusEvent } from '../../src/domain/status-event.js';
import { connectNats } from '../../src/infra/nats/connection.js';
import type { NatsLogger } from '../../src/infra/nats/connection.js';
import { createJobPublisher, decodeJob, getJobConsumer } from '../../src/infra/nats/job-queue.js';
import type { Job } from '../../src/domain/ports.js';
import { jobSubject, streamName } from '../../src/infra/nats/layout.js';
import type { NatsLayout } from '../../src/infra/nats/layout.js';
import { createStatusBus } from '../../src/infra/nats/status-bus.js';
import type { StatusSubscription } from '../../src/domain/ports.js';
import { deleteStreams, ensureStreams } from '../../src/infra/nats/streams.js';
import type { EnsureStreamsOptions } from '../../src/infra/nats/streams.js';
import { startNatsServer } from '../support/nats-server.js';
import type { TestNatsServer } from '../support/nats-server.js';
import { NATS_URL, randomLayout } from '../support/nats.js';
import { freePort } from '../support/ports.js';

const CHANNELS: readonly Channel[] = ['email', 'in_app'];
const ALL_CHANNELS = ['email', 'sms', 'push', 'in_app', 'webhook'] as const;
const STREAM_OPTS: EnsureStreamsOptions = {
  channels: CHANNELS,
  duplicateWindowMs: 600_000,
  ackWaitMs: 30_000,
  maxDeliver: 5,
};
const MS = 1_000_000;

/** Connections and streams opened by the current test, released in afterEach. */
const opened: { nc: NatsConnection; layout?: NatsLayout; jsm?: JetStreamManager }[] = [];

async function open(url = NATS_URL, logger?: NatsLogger): Promise<NatsConnection> {
  const nc = await connectNats({
    servers: url,
    name: 'herald-test',
    logger,
    reconnectTimeWaitMs: 100,
  });
  opened.push({ nc });
  return nc;
}

async function openWithStreams(
  opts: Partial<EnsureStreamsOptions> = {},
): Promise<{ nc: NatsConnection; jsm: JetStreamManager; layout: NatsLayout }> {
  const nc = await open();
  const jsm = await jetstreamManager(nc);
  const layout = randomLayout();
  opened.push({ nc, jsm, layout });
  await ensureStreams(jsm, layout, { ...STREAM_OPTS, ...opts });
  return { nc, jsm, layout };
}

afterEach(async () => {
  for (const { nc, jsm, layout } of opened.splice(0).reverse()) {
    if (jsm && layout && !nc.isClosed()) await deleteStreams(jsm, layout, CHANNELS);
    if (!nc.isClosed()) await nc.close();
  }
});

function job(overrides: Partial<Job> = {}): Job {
  return {
    id: 'n-1',
    tenantId: 'tenant-1',
    channel: 'email',
    lane: 'high',
    generation: 0,
    ...overrides,
  };
}

describe('ensureStreams', () => {
  it('creates a work-queue stream and one consumer per lane when none exist', async () => {
    const nc = await open();
    const jsm = await jetstreamManager(nc);
    const layout = randomLayout();
    opened.push({ nc, jsm, layout });

    const result = await ensureStreams(jsm, layout, STREAM_OPTS);

    expect(result.updated).toEqual([]);
    // Per channel a stream and four lane consumers; then the dead-letter stream, the advisory
    // stream and the scheduler's consumer of it.
    expect(result.created).toHaveLength(CHANNELS.length * 5 + 3);
    const dlq = await jsm.streams.info(`${layout.streamPrefix}_DLQ`);
    expect(dlq.config).toMatchObject({
      subjects: [`${layout.subjectPrefix}.dlq.>`],
      retention: 'limits',
      max_age: 30 * 86_400_000 * MS,
    });
    const advisories = await jsm.streams.info(`${layout.streamPrefix}_ADVISORIES`);
    // Every channel's advisories, whichever channels this process serves.
    expect(advisories.config.subjects).toEqual(
      ALL_CHANNELS.map(
        (c) => `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${streamName(layout, c)}.*`,
      ),
    );
    const si = await jsm.streams.info(streamName(layout, 'in_app'));
    expect(si.config).toMatchObject({
      name: `${layout.streamPrefix}_IN_APP`,
      subjects: [`${layout.subjectPrefix}.jobs.in_app.*`],
      retention: 'workqueue',
      storage: 'file',
      discard: 'old',
      duplicate_window: 600_000 * MS,
    });
    const consumers = await jsm.consumers.list(streamName(layout, 'in_app')).next();
    expect(consumers.map((c) => c.name).sort()).toEqual(
      ['in_app_critical', 'in_app_high', 'in_app_low', 'in_app_normal'].sort(),
    );
    const ci = await jsm.consumers.info(streamName(layout, 'email'), 'email_high');
    expect(ci.config).toMatchObject({
      durable_name: 'email_high',
      filter_subject: jobSubject(layout, 'email', 'high'),
      ack_policy: 'explicit',
      deliver_policy: 'all',
      ack_wait: 30_000 * MS,
      max_deliver: 5,
      max_ack_pending: 1000,
    });
    expect(ci.config.backoff ?? []).toEqual([]);
  });

  it('changes nothing when run again with the same options', async () => {
    const { jsm, layout } = await openWithStreams();
    const before = await jsm.consumers.info(streamName(layout, 'email'), 'email_low');

    const again = await ensureStreams(jsm, layout, STREAM_OPTS);

    expect(again).toEqual({ created: [], updated: [] });
    const after = await jsm.consumers.info(streamName(layout, 'email'), 'email_low');
    expect(after.created).toBe(before.created);
    expect(after.config).toEqual(before.config);
  });

  it('updates the consumers when ack_wait and max_deliver change', async () => {
    const { jsm, layout } = await openWithStreams();

    const result = await ensureStreams(jsm, layout, {
      ...STREAM_OPTS,
      ackWaitMs: 45_000,
      maxDeliver: 7,
    });

    expect(result.created).toEqual([]);
    expect(result.updated).toContain(`consumer ${streamName(layout, 'email')}/email_normal`);
    expect(result.updated.filter((u) => u.startsWith('stream'))).toEqual([]);
    const ci = await jsm.consumers.info(streamName(layout, 'in_app'), 'in_app_low');
    expect(ci.config.ack_wait).toBe(45_000 * MS);
    expect(ci.config.max_deliver).toBe(7);
  });

  it('updates the stream when the duplicate window changes', async () => {
    const { jsm, layout } = await openWithStreams();

    const result = await ensureStreams(jsm, layout, { ...STREAM_OPTS, duplicateWindowMs: 900_000 });

    expect(result.updated).toEqual([
      ...CHANNELS.map((c) => `stream ${streamName(layout, c)}`),
      `stream ${layout.streamPrefix}_DLQ`,
      `stream ${layout.streamPrefix}_ADVISORIES`,
    ]);
    const si = await jsm.streams.info(streamName(layout, 'email'));
    expect(si.config.duplicate_window).toBe(900_000 * MS);
  });

  it('removes the backoff and restores ack_wait when an existing consumer has a backoff', async () => {
    const { jsm, layout } = await openWithStreams();
    const stream = streamName(layout, 'email');
    // On 2.9 a backoff silently replaces ack_wait with its first step.
    const tampered = await jsm.consumers.update(stream, 'email_high', { backoff: [1_000 * MS] });
    expect(tampered.config.ack_wait).toBe(1_000 * MS);

    const result = await ensureStreams(jsm, layout, STREAM_OPTS);

    expect(result.updated).toEqual([`consumer ${stream}/email_high`]);
    const ci = await jsm.consumers.info(stream, 'email_high');
    expect(ci.config.backoff ?? []).toEqual([]);
    expect(ci.config.ack_wait).toBe(30_000 * MS);
  });

  it('throws naming the option when an existing stream has a storage that cannot change', async () => {
    const { jsm, layout } = await openWithStreams({ storage: 'memory' });

    await expect(ensureStreams(jsm, layout, STREAM_OPTS)).rejects.toThrow(
      `stream ${streamName(layout, 'email')}: storage is "memory", expected "file"`,
    );
  });
});

describe('createJobPublisher', () => {
  it('stores one message when the same job is published twice', async () => {
    const { nc, jsm, layout } = await openWithStreams();
    const publisher = createJobPublisher(jetstream(nc), layout);

    await publisher.publish(job());
    await publisher.publish(job());

    const si = await jsm.streams.info(streamName(layout, 'email'));
    expect(si.state.messages).toBe(1);
  });

  it('stores a second message when the generation is bumped', async () => {
    const { jsm, layout } = await openWithStreams();
    const publisher = createJobPublisher(jsm.jetstream(), layout);

    await publisher.publish(job({ generation: 1 }));
    await publisher.publish(job({ generation: 2 }));

    const si = await jsm.streams.info(streamName(layout, 'email'));
    expect(si.state.messages).toBe(2);
  });

  it('delivers the job to its lane consumer with the message id header when published', async () => {
    const { jsm, layout } = await openWithStreams();
    const js = jsm.jetstream();
    const sent = job({
      id: 'n.*>1',
      tenantId: 'ten ant',
      channel: 'in_app',
      lane: 'critical',
      generation: 3,
    });
    await createJobPublisher(js, layout).publish(sent);

    const consumer = await getJobConsumer(js, layout, 'in_app', 'critical');
    const msg = await consumer.next({ expires: 5_000 });

    expect(msg).not.toBeNull();
    expect(msg?.headers?.get('Nats-Msg-Id')).toBe('n.*>1:3');
    expect(decodeJob(msg!, 'in_app', 'critical')).toEqual(sent);
    msg?.ack();
  });

  it('rejects with UnavailableError when no stream takes the subject', async () => {
    const nc = await open();
    const publisher = createJobPublisher(jetstream(nc), randomLayout(), { timeoutMs: 500 });

    await expect(publisher.publish(job())).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('decodeJob', () => {
  it('throws when the message on the stream is not a job', async () => {
    const { jsm, layout } = await openWithStreams();
    const js = jsm.jetstream();
    await js.publish(jobSubject(layout, 'email', 'low'), 'not json at all');

    const msg = await (await getJobConsumer(js, layout, 'email', 'low')).next({ expires: 5_000 });

    expect(msg).not.toBeNull();
    expect(() => decodeJob(msg!, 'email', 'low')).toThrow(
      /malformed job on .*\.jobs\.email\.low: not JSON/,
    );
    msg?.term();
  });

  it.each([
    ['null', /not a JSON object/],
    ['[1]', /not a JSON object/],
    ['{"tenantId":"t","generation":0}', /id must be/],
    ['{"id":"n","tenantId":"","generation":0}', /tenantId must be/],
    ['{"id":"n","tenantId":"t","generation":-1}', /generation must be/],
    ['{"id":"n","tenantId":"t","generation":"1"}', /generation must be/],
  ])('throws when the payload is %s', (payload, error) => {
    const msg = { data: new TextEncoder().encode(payload), subject: 'herald.jobs.sms.low' };
    expect(() => decodeJob(msg, 'sms', 'low')).toThrow(error);
  });
});

describe('createStatusBus', () => {
  it('delivers only that user’s events, in order, with Dates revived when a user subscribes', async () => {
    const nc = await open();
    const layout = randomLayout();
    const bus = createStatusBus(nc, layout);
    const sub = bus.subscribe({ tenantId: 'ten.ant', userId: 'us er' });
    await sub.ready;

    bus.publish(statusEvent('ten.ant', 'us er', 'n.1', 1, 'PENDING'));
    bus.publish(statusEvent('ten.ant', 'other', 'n.2', 1, 'PENDING'));
    bus.publish(statusEvent('other-tenant', 'us er', 'n.3', 1, 'PENDING'));
    bus.publish(statusEvent('ten.ant', 'us er', 'n.1', 2, 'PROCESSING'));
    bus.publish(statusEvent('ten.ant', 'us er', 'n.1', 3, 'DELIVERED'));

    const got = await take(sub, 3);
    expect(got.map((e) => [e.notification.id, e.notification.version, e.event.status])).toEqual([
      ['n.1', 1, 'PENDING'],
      ['n.1', 2, 'PROCESSING'],
      ['n.1', 3, 'DELIVERED'],
    ]);
    const last = got[2]!;
    expect(last.notification.createdAt).toBeInstanceOf(Date);
    expect(last.notification.createdAt.toISOString()).toBe('2030-01-02T03:04:05.678Z');
    expect(last.notification.deliveredAt).toBeInstanceOf(Date);
    expect(last.notification.sendAt).toBeNull();
    expect(last.event.time).toBeInstanceOf(Date);
    expect(last.notification.content.data).toEqual({ time: 'not-a-date' });
  });

  it('delivers one notification’s events when subscribed by notification id', async () => {
    const nc = await open();
    const bus = createStatusBus(nc, randomLayout());
    const sub = bus.subscribe({ tenantId: 't', notificationId: 'n-2' });
    await sub.ready;

    bus.publish(statusEvent('t', 'u1', 'n-1', 1, 'PENDING'));
    bus.publish(statusEvent('t', 'u2', 'n-2', 1, 'PENDING'));

    const [only] = await take(sub, 1);
    expect(only?.notification.id).toBe('n-2');
  });

  it('ends the iteration when the subscription is closed', async () => {
    const nc = await open();
    const sub = createStatusBus(nc, randomLayout()).subscribe({ tenantId: 't' });
    await sub.ready;
    const iteration = (async () => {
      const seen: StatusEvent[] = [];
      for await (const e of sub) seen.push(e);
      return seen;
    })();

    sub.close();

    await expect(withTimeout(iteration, 2_000)).resolves.toEqual([]);
  });

  it('does not throw when publishing on a closed connection', async () => {
    const nc = await open();
    const bus = createStatusBus(nc, randomLayout());
    await nc.close();

    expect(() => bus.publish(statusEvent('t', 'u', 'n', 1, 'PENDING'))).not.toThrow();
  });
});

describe('connectNats', () => {
  it('throws UnavailableError when nothing listens on the port', async () => {
    const port = await freePort();

    const err = await connectNats({
      servers: `nats://127.0.0.1:${port}`,
      name: 'herald-test',
    }).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toBe(`NATS at nats://127.0.0.1:${port} is unavailable`);
  });

  it('keeps credentials out of the error when the URL has them', async () => {
    const port = await freePort();

    await expect(
      connectNats({ servers: `nats://user:secret@127.0.0.1:${port}`, name: 'herald-test' }),
    ).rejects.toThrow(`NATS at nats://127.0.0.1:${port} is unavailable`);
  });
});

describe('connectNats with a restarted server', () => {
  let server: TestNatsServer;
  beforeAll(async () => {
    server = await startNatsServer({ jetstream: true });
  });
  afterAll(async () => {
    await server.close();
  });

  it('reconnects and publishes jobs again when the server is stopped and started', async () => {
    const logged: string[] = [];
    const logger: NatsLogger = {
      info: (_o, msg) => logged.push(msg),
      warn: (_o, msg) => logged.push(msg),
      error: (_o, msg) => logged.push(msg),
    };
    const nc = await open(server.url, logger);
    const statuses = nc.status()[Symbol.asyncIterator]();
    const jsm = await jetstreamManager(nc);
    const layout = randomLayout();
    await ensureStreams(jsm, layout, { ...STREAM_OPTS, channels: ['email'] });
    const publisher = createJobPublisher(jsm.jetstream(), layout, { timeoutMs: 500 });
    const bus = createStatusBus(nc, layout);
    await publisher.publish(job({ id: 'before' }));

    await server.stop();
    await waitForStatus(statuses, 'disconnect');
    expect(() => bus.publish(statusEvent('t', 'u', 'n', 1, 'PENDING'))).not.toThrow();
    await expect(publisher.publish(job({ id: 'while-down' }))).rejects.toBeInstanceOf(
      UnavailableError,
    );
    await server.start();
    await waitForStatus(statuses, 'reconnect');

    await publisher.publish(job({ id: 'after' }));
    const si = await jsm.streams.info(streamName(layout, 'email'));
    // File storage: the job from before the restart is still there.
    expect(si.state.messages).toBeGreaterThanOrEqual(2);
    expect(logged).toEqual(
      expect.arrayContaining(['NATS disconnected; reconnecting', 'NATS reconnected']),
    );
    await deleteStreams(jsm, layout, ['email']);
  });

  it('survives the server being killed when JetStream state is on disk', async () => {
    const nc = await open(server.url);
    const statuses = nc.status()[Symbol.asyncIterator]();
    const jsm = await jetstreamManager(nc);
    const layout = randomLayout();
    await ensureStreams(jsm, layout, { ...STREAM_OPTS, channels: ['email'] });
    await createJobPublisher(jsm.jetstream(), layout).publish(job({ id: 'durable' }));

    await server.kill();
    await waitForStatus(statuses, 'disconnect');
    await server.start();
    await waitForStatus(statuses, 'reconnect');

    const consumer = await getJobConsumer(jsm.jetstream(), layout, 'email', 'high');
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg && decodeJob(msg, 'email', 'high').id).toBe('durable');
    msg?.ack();
    await deleteStreams(jsm, layout, ['email']);
  });
});

function statusEvent(
  tenantId: string,
  userId: string,
  id: string,
  version: number,
  status: NotificationStatus,
): StatusEvent {
  const time = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
  const notification: Notification = {
    id,
    tenantId,
    userId,
    channel: 'in_app',
    priority: 'normal',
    category: null,
    content: { title: 'hi', data: { time: 'not-a-date' } },
    to: null,
    idempotencyKey: null,
    correlationId: null,
    metadata: {},
    status,
    attempt: version - 1,
    attemptFloor: 0,
    version,
    generation: 0,
    sendAt: null,
    createdAt: time,
    updatedAt: time,
    deliveredAt: status === 'DELIVERED' ? time : null,
    nextAttemptAt: null,
    leaseUntil: null,
    publishedAt: time,
    provider: null,
    providerMessageId: null,
    lastError: null,
    deadLetteredAt: null,
    template: null,
    statusReason: null,
    seenAt: null,
    readAt: null,
    archivedAt: null,
  };
  return {
    notification,
    event: {
      notificationId: id,
      version,
      status,
      attempt: version - 1,
      provider: null,
      error: null,
      generation: 0,
      time,
    },
  };
}

async function take(sub: StatusSubscription, n: number): Promise<StatusEvent[]> {
  const got: StatusEvent[] = [];
  const collect = (async () => {
    for await (const e of sub) {
      got.push(e);
      if (got.length === n) break;
    }
    return got;
  })();
  try {
    return await withTimeout(collect, 5_000);
  } finally {
    sub.close();
  }
}

async function waitForStatus(statuses: AsyncIterator<Status>, type: Status['type']): Promise<void> {
  const wait = (async () => {
    for (;;) {
      const r = await statuses.next();
      if (r.done) throw new Error(`connection closed before a ${type} status`);
      if (r.value.type === type) return;
    }
  })();
  await withTimeout(wait, 10_000);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
