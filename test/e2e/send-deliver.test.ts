/**
 * End to end through a real Herald (api + worker + scheduler, PostgreSQL, NATS JetStream): a
 * notification sent by each kind of client is delivered, and watchers see every status change.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  Channel,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type WatchNotificationsResponse,
} from '@herald/client';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { WatchNotificationsRequestSchema } from '@herald/client/gen/herald/v1/notification_pb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const { PENDING, PROCESSING, DELIVERED, SCHEDULED, CANCELLED } = NotificationStatus;

/** One state a watcher saw, whatever client it came through. */
interface Seen {
  id: string;
  status: NotificationStatus;
  version: number;
  eventStatus: NotificationStatus;
  eventVersion: number;
}

/** A running watch: what it has seen so far, and how to stop it. */
interface Watch {
  seen: Seen[];
  /** The states of one notification, in the order they arrived. */
  of(id: string): Seen[];
  /** Cancels the stream; rethrows anything the stream failed with before. */
  close(): Promise<void>;
}

interface Sent {
  id: string;
  status: NotificationStatus;
}

/** What the tests need from a client, so one test body serves every client. */
interface Driver {
  send(req: {
    userId: string;
    channel: 'email' | 'in_app';
    to?: string;
    title: string;
  }): Promise<Sent>;
  get(id: string): Promise<{
    status: NotificationStatus;
    version: number;
    attempt: number;
    provider: string;
    providerMessageId: string;
    to: string;
    delivered: boolean;
    events: { status: NotificationStatus; version: number; provider: string }[];
  }>;
  watchUser(userId: string, initialCount: number): Watch;
  close(): void;
}

function watchOf(
  start: (push: (s: Seen) => void) => { done: Promise<void>; cancel: () => void },
): Watch {
  const seen: Seen[] = [];
  let failure: Error | null = null;
  const { done, cancel } = start((s) => seen.push(s));
  const settled = done.catch((err: unknown) => {
    failure = err instanceof Error ? err : new Error(String(err));
  });
  return {
    seen,
    of: (id) => seen.filter((s) => s.id === id),
    async close() {
      cancel();
      await settled;
      if (failure !== null) throw failure;
    },
  };
}

function connectWatch(
  client: HeraldClient,
  request: MessageInitShape<typeof WatchNotificationsRequestSchema>,
): Watch {
  return watchOf((push) => {
    const abort = new AbortController();
    const done = (async () => {
      try {
        for await (const res of client.watchNotifications(request, { signal: abort.signal })) {
          push(fromConnect(res));
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
    })();
    return { done, cancel: () => abort.abort() };
  });
}

function fromConnect(res: WatchNotificationsResponse): Seen {
  return {
    id: res.notification?.id ?? '',
    status: res.notification?.status ?? NotificationStatus.UNSPECIFIED,
    version: Number(res.notification?.version ?? -1n),
    eventStatus: res.event?.status ?? NotificationStatus.UNSPECIFIED,
    eventVersion: Number(res.event?.version ?? -1n),
  };
}

function connectDriver(client: HeraldClient): Driver {
  return {
    async send({ userId, channel, to, title }) {
      const res = await client.send({
        userId,
        channel: channel === 'email' ? Channel.EMAIL : Channel.IN_APP,
        to: to ?? '',
        content: channel === 'email' ? { subject: title, body: `${title}, by email` } : { title },
      });
      return { id: res.id, status: res.status };
    },
    async get(id) {
      const { notification: n, events } = await client.getNotification({ id });
      return {
        status: n?.status ?? NotificationStatus.UNSPECIFIED,
        version: Number(n?.version ?? -1n),
        attempt: n?.attempt ?? -1,
        provider: n?.provider ?? '',
        providerMessageId: n?.providerMessageId ?? '',
        to: n?.to ?? '',
        delivered: n?.deliveredAt !== undefined,
        events: events.map((e) => ({
          status: e.status,
          version: Number(e.version),
          provider: e.provider,
        })),
      };
    },
    watchUser: (userId, initialCount) =>
      connectWatch(client, { target: { case: 'userId', value: userId }, initialCount }),
    close: () => client.close(),
  };
}

/** The messages as @grpc/proto-loader decodes them (longs and enums as strings). */
interface GrpcNotification {
  id: string;
  status: string;
  version: string;
  attempt: number;
  provider: string;
  providerMessageId: string;
  to: string;
  deliveredAt: { seconds: string; nanos: number } | null;
}
interface GrpcEvent {
  status: string;
  version: string;
  provider: string;
}
interface GrpcWatchResponse {
  notification: GrpcNotification;
  event: GrpcEvent;
}
type Callback<T> = (err: grpc.ServiceError | null, res?: T) => void;

/** The slice of the @grpc/grpc-js dynamic client these tests use. */
interface GrpcNotificationClient extends grpc.Client {
  Send(
    req: object,
    options: grpc.CallOptions,
    cb: Callback<{ id: string; status: string }>,
  ): grpc.ClientUnaryCall;
  GetNotification(
    req: { id: string },
    options: grpc.CallOptions,
    cb: Callback<{ notification: GrpcNotification; events: GrpcEvent[] }>,
  ): grpc.ClientUnaryCall;
  WatchNotifications(req: object): grpc.ClientReadableStream<GrpcWatchResponse>;
}
type GrpcNotificationClientCtor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => GrpcNotificationClient;

function loadGrpcClient(h2cUrl: string): GrpcNotificationClient {
  // google/protobuf/timestamp.proto is not in proto/: protobufjs, under proto-loader, bundles the
  // well-known types and resolves the import itself.
  const definition = protoLoader.loadSync('herald/v1/notification.proto', {
    includeDirs: [fileURLToPath(new URL('../../proto', import.meta.url))],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    herald: { v1: { NotificationService: GrpcNotificationClientCtor } };
  };
  return new pkg.herald.v1.NotificationService(
    new URL(h2cUrl).host,
    grpc.credentials.createInsecure(),
  );
}

const statusFromName = (name: string): NotificationStatus =>
  NotificationStatus[name.replace(/^NOTIFICATION_STATUS_/, '') as keyof typeof NotificationStatus];

function unary<T>(call: (options: grpc.CallOptions, cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    call({ deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

function grpcDriver(client: GrpcNotificationClient): Driver {
  return {
    async send({ userId, channel, to, title }) {
      const res = await unary<{ id: string; status: string }>((o, cb) =>
        client.Send(
          {
            userId,
            channel: channel === 'email' ? 'CHANNEL_EMAIL' : 'CHANNEL_IN_APP',
            to: to ?? '',
            content:
              channel === 'email' ? { subject: title, body: `${title}, by email` } : { title },
          },
          o,
          cb,
        ),
      );
      return { id: res.id, status: statusFromName(res.status) };
    },
    async get(id) {
      const { notification: n, events } = await unary<{
        notification: GrpcNotification;
        events: GrpcEvent[];
      }>((o, cb) => client.GetNotification({ id }, o, cb));
      return {
        status: statusFromName(n.status),
        version: Number(n.version),
        attempt: n.attempt,
        provider: n.provider,
        providerMessageId: n.providerMessageId,
        to: n.to,
        delivered: n.deliveredAt !== null,
        events: events.map((e) => ({
          status: statusFromName(e.status),
          version: Number(e.version),
          provider: e.provider,
        })),
      };
    },
    watchUser: (userId, initialCount) =>
      watchOf((push) => {
        const call = client.WatchNotifications({ userId, initialCount });
        let cancelled = false;
        call.on('data', (res: GrpcWatchResponse) =>
          push({
            id: res.notification.id,
            status: statusFromName(res.notification.status),
            version: Number(res.notification.version),
            eventStatus: statusFromName(res.event.status),
            eventVersion: Number(res.event.version),
          }),
        );
        const done = new Promise<void>((resolve, reject) => {
          call.on('error', (err: grpc.ServiceError) =>
            cancelled && err.code === grpc.status.CANCELLED ? resolve() : reject(err),
          );
          call.on('end', resolve);
        });
        return {
          done,
          cancel: () => {
            cancelled = true;
            call.cancel();
          },
        };
      }),
    close: () => client.close(),
  };
}

let t: TestHerald;

beforeAll(async () => {
  t = await startTestHerald();
});

afterAll(async () => {
  await t?.stop();
});

interface ClientCase {
  name: string;
  driver: () => Driver;
}

const cases: ClientCase[] = [
  {
    name: '@herald/client over gRPC (h2c)',
    driver: () => connectDriver(createHeraldClient({ baseUrl: t.h2cUrl, protocol: 'grpc' })),
  },
  {
    name: '@herald/client over Connect JSON (HTTP/1.1)',
    driver: () => connectDriver(createHeraldClient({ baseUrl: t.httpUrl, protocol: 'connect' })),
  },
  {
    name: '@grpc/grpc-js with @grpc/proto-loader',
    driver: () => grpcDriver(loadGrpcClient(t.h2cUrl)),
  },
];

describe('Send', () => {
  /**
   * Sends `req` while a watch of its user is live; returns what was sent and every state the
   * watch saw of it, once it saw DELIVERED.
   */
  async function sendWatched(
    d: Driver,
    req: Parameters<Driver['send']>[0],
  ): Promise<{ sent: Sent; seen: Seen[] }> {
    // The watch is live once it has shown the warm-up: the server subscribes before it reads the
    // user's latest notification.
    const warmUp = await d.send({ userId: req.userId, channel: 'in_app', title: 'warm-up' });
    const watch = d.watchUser(req.userId, 1);
    try {
      await expect.poll(() => watch.of(warmUp.id).length, { timeout: 10_000 }).toBeGreaterThan(0);

      const sent = await d.send(req);
      expect(sent.status).toBe(PENDING);

      await expect
        .poll(() => watch.of(sent.id).map((s) => s.status), { timeout: 15_000 })
        .toContain(DELIVERED);
      return { sent, seen: watch.of(sent.id) };
    } finally {
      await watch.close();
    }
  }

  it.each(cases)(
    'reaches DELIVERED through PENDING and PROCESSING, seen live by a user watch, when email is sent with $name',
    async ({ driver }) => {
      const d = driver();
      const userId = `u-${randomUUID()}`;
      const to = `${userId}@example.com`;
      try {
        const { sent, seen } = await sendWatched(d, {
          userId,
          channel: 'email',
          to,
          title: 'Your order shipped',
        });
        expect(seen).toEqual([
          { id: sent.id, status: PENDING, version: 1, eventStatus: PENDING, eventVersion: 1 },
          { id: sent.id, status: PROCESSING, version: 2, eventStatus: PROCESSING, eventVersion: 2 },
          { id: sent.id, status: DELIVERED, version: 3, eventStatus: DELIVERED, eventVersion: 3 },
        ]);

        expect(await d.get(sent.id)).toEqual({
          status: DELIVERED,
          version: 3,
          attempt: 1,
          provider: 'log',
          providerMessageId: `log-${sent.id}`,
          to,
          delivered: true,
          events: [
            { status: PENDING, version: 1, provider: '' },
            { status: PROCESSING, version: 2, provider: '' },
            { status: DELIVERED, version: 3, provider: 'log' },
          ],
        });
        // The log provider delivered it, exactly once.
        expect(t.deliveries().filter((id) => id === sent.id)).toHaveLength(1);
      } finally {
        d.close();
      }
    },
  );

  it.each(cases)(
    'reaches DELIVERED straight from PENDING, with no PROCESSING, seen live by a user watch, when in_app is sent with $name',
    async ({ driver }) => {
      const d = driver();
      const userId = `u-${randomUUID()}`;
      try {
        const { sent, seen } = await sendWatched(d, {
          userId,
          channel: 'in_app',
          title: 'Your order shipped',
        });
        expect(seen).toEqual([
          { id: sent.id, status: PENDING, version: 1, eventStatus: PENDING, eventVersion: 1 },
          { id: sent.id, status: DELIVERED, version: 2, eventStatus: DELIVERED, eventVersion: 2 },
        ]);

        expect(await d.get(sent.id)).toEqual({
          status: DELIVERED,
          version: 2,
          attempt: 1,
          provider: 'in_app',
          providerMessageId: '',
          to: '',
          delivered: true,
          events: [
            { status: PENDING, version: 1, provider: '' },
            { status: DELIVERED, version: 2, provider: 'in_app' },
          ],
        });
        // in_app needs no provider call: its worker marks it DELIVERED as it claims it.
        expect(t.deliveries().filter((id) => id === sent.id)).toHaveLength(0);
      } finally {
        d.close();
      }
    },
  );
});

describe('WatchNotifications by notification id', () => {
  let client: HeraldClient;
  let deliveredId: string;

  beforeAll(async () => {
    client = createHeraldClient({ baseUrl: t.h2cUrl });
    // Email, delivered by the log provider: a history with every step, PROCESSING included.
    const userId = `u-${randomUUID()}`;
    const sent = await client.send({
      userId,
      channel: Channel.EMAIL,
      to: `${userId}@example.com`,
      content: { subject: 'history', body: 'b' },
    });
    deliveredId = sent.id;
    // expect.poll is for tests; a hook waits with vi.waitFor.
    await vi.waitFor(
      async () => {
        const { notification } = await client.getNotification({ id: deliveredId });
        expect(notification?.status).toBe(DELIVERED);
      },
      { timeout: 15_000, interval: 50 },
    );
  });

  afterAll(() => {
    client?.close();
  });

  function byId(id: string, afterVersion?: bigint): Watch {
    const request: MessageInitShape<typeof WatchNotificationsRequestSchema> = {
      target: { case: 'notificationId', value: id },
    };
    if (afterVersion !== undefined) request.afterVersion = afterVersion;
    return connectWatch(client, request);
  }

  it('replays the full history, oldest first, when after_version is 0', async () => {
    const watch = byId(deliveredId, 0n);
    try {
      await expect.poll(() => watch.seen.length, { timeout: 10_000 }).toBe(3);

      expect(watch.seen).toEqual([
        { id: deliveredId, status: PENDING, version: 1, eventStatus: PENDING, eventVersion: 1 },
        {
          id: deliveredId,
          status: PROCESSING,
          version: 2,
          eventStatus: PROCESSING,
          eventVersion: 2,
        },
        { id: deliveredId, status: DELIVERED, version: 3, eventStatus: DELIVERED, eventVersion: 3 },
      ]);
    } finally {
      await watch.close();
    }
  });

  it('sends only the requested statuses when statuses is set', async () => {
    const watch = connectWatch(client, {
      target: { case: 'notificationId', value: deliveredId },
      afterVersion: 0n,
      statuses: [PENDING, DELIVERED],
    });
    try {
      await expect.poll(() => watch.seen.length, { timeout: 10_000 }).toBe(2);
      // PROCESSING (version 2) is skipped; nothing else is.
      expect(watch.seen.map((s) => [s.status, s.version])).toEqual([
        [PENDING, 1],
        [DELIVERED, 3],
      ]);
    } finally {
      await watch.close();
    }
  });

  it('replays only the later changes when after_version is 1', async () => {
    const watch = byId(deliveredId, 1n);
    try {
      await expect.poll(() => watch.seen.length, { timeout: 10_000 }).toBe(2);

      expect(watch.seen.map((s) => [s.status, s.version])).toEqual([
        [PROCESSING, 2],
        [DELIVERED, 3],
      ]);
    } finally {
      await watch.close();
    }
  });

  it('starts with the current state only when after_version is not set', async () => {
    const watch = byId(deliveredId);
    try {
      await expect.poll(() => watch.seen.length, { timeout: 10_000 }).toBeGreaterThan(0);

      expect(watch.seen).toEqual([
        { id: deliveredId, status: DELIVERED, version: 3, eventStatus: DELIVERED, eventVersion: 3 },
      ]);
    } finally {
      await watch.close();
    }
  });

  it('sends the current state, then live changes, when the notification is still open', async () => {
    const sendAt = { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 };
    const sent = await client.send({
      userId: `u-${randomUUID()}`,
      channel: Channel.IN_APP,
      content: { title: 'later' },
      sendAt,
    });
    expect(sent.status).toBe(SCHEDULED);
    const watch = byId(sent.id);
    try {
      await expect.poll(() => watch.seen.length, { timeout: 10_000 }).toBe(1);

      await client.cancelNotification({ id: sent.id });

      await expect.poll(() => watch.seen.length, { timeout: 10_000 }).toBe(2);
      expect(watch.seen.map((s) => [s.status, s.version])).toEqual([
        [SCHEDULED, 1],
        [CANCELLED, 2],
      ]);
    } finally {
      await watch.close();
    }
  });

  /** The error a watch ends with before sending anything. */
  async function failureOf(request: MessageInitShape<typeof WatchNotificationsRequestSchema>) {
    try {
      for await (const res of client.watchNotifications(request, { timeoutMs: 10_000 })) {
        throw new Error(`expected no message, got ${res.notification?.id}`);
      }
    } catch (err) {
      return ConnectError.from(err);
    }
    throw new Error('expected the watch to fail');
  }

  it('fails with NOT_FOUND when the notification does not exist', async () => {
    const err = await failureOf({
      target: { case: 'notificationId', value: '00000000-0000-7000-8000-000000000000' },
    });

    expect(err.code).toBe(Code.NotFound);
  });

  it('fails with INVALID_ARGUMENT naming the field when the id is not a UUID', async () => {
    const err = await failureOf({ target: { case: 'notificationId', value: 'nope' } });

    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain('notification_id');
  });

  it('fails with INVALID_ARGUMENT naming statuses when a status is not defined', async () => {
    const err = await failureOf({
      target: { case: 'notificationId', value: deliveredId },
      statuses: [99 as NotificationStatus],
    });

    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain('statuses');
  });
});
