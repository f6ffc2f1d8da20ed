import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Code, createClient, createRouterTransport } from '@connectrpc/connect';
import type { Client, Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter, createGrpcTransport } from '@connectrpc/connect-node';
import { protoPath } from 'grpc-health-check';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@herald/client/gen/health/v1/health_pb';
import { afterEach, describe, expect, it } from 'vitest';
import { createHealthService } from '../../src/server/health.js';
import type { HealthService } from '../../src/server/health.js';
import { createCleanups } from '../support/cleanups.js';
import { rejection } from '../support/connect.js';
import { startH2cServer } from '../support/http-server.js';
import type { H2cServer } from '../support/http-server.js';

const deadlineMs = 10_000;

interface HealthResponse {
  status: string;
}

/** The slice of the @grpc/grpc-js dynamic client these tests use. */
interface GrpcHealthClient extends grpc.Client {
  Check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: HealthResponse) => void,
  ): grpc.ClientUnaryCall;
  Watch(
    request: { service: string },
    options: grpc.CallOptions,
  ): grpc.ClientReadableStream<HealthResponse>;
}

function startServer(health: HealthService, interceptors: Interceptor[] = []): Promise<H2cServer> {
  return startH2cServer(
    connectNodeAdapter({ routes: (router) => health.register(router), interceptors }),
  );
}

async function createGrpcHealthClient(port: number): Promise<GrpcHealthClient> {
  const definition = await protoLoader.load(protoPath, {
    keepCase: true,
    enums: String,
    defaults: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new loaded.grpc.health.v1.Health(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as GrpcHealthClient;
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), deadlineMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function grpcCheck(client: GrpcHealthClient, service: string): Promise<HealthResponse> {
  return new Promise((resolve, reject) => {
    client.Check({ service }, { deadline: Date.now() + deadlineMs }, (error, response) =>
      error || !response ? reject(error ?? new Error('no response')) : resolve(response),
    );
  });
}

describe('grpc.health.v1.Health/Check', () => {
  const cleanups = createCleanups();
  afterEach(() => cleanups.runAll());

  function connectClient(health: HealthService): Client<typeof Health> {
    return createClient(
      Health,
      createRouterTransport((router) => health.register(router)),
    );
  }

  it('returns SERVING when the server as a whole is asked for over Connect', async () => {
    const response = await connectClient(createHealthService()).check(
      { service: '' },
      { timeoutMs: deadlineMs },
    );

    expect(response.status).toBe(ServingStatus.SERVING);
  });

  it('fails with NOT_FOUND when the service is unknown over Connect', async () => {
    const error = await rejection(
      connectClient(createHealthService()).check(
        { service: 'herald.v1.Nope' },
        { timeoutMs: deadlineMs },
      ),
    );

    expect(error.code).toBe(Code.NotFound);
  });

  it('returns each service status when a @grpc/grpc-js client asks over h2c', async () => {
    const health = createHealthService();
    health.setStatus('herald.v1.NotificationService', 'SERVING');
    health.setStatus('herald.v1.Other', 'NOT_SERVING');
    const server = await startServer(health);
    cleanups.add(() => server.close());
    const client = await createGrpcHealthClient(server.port);
    cleanups.add(() => client.close());

    await expect(grpcCheck(client, '')).resolves.toEqual({ status: 'SERVING' });
    await expect(grpcCheck(client, 'herald.v1.NotificationService')).resolves.toEqual({
      status: 'SERVING',
    });
    await expect(grpcCheck(client, 'herald.v1.Other')).resolves.toEqual({ status: 'NOT_SERVING' });
  });

  it('fails with NOT_FOUND when a @grpc/grpc-js client asks for an unknown service', async () => {
    const server = await startServer(createHealthService());
    cleanups.add(() => server.close());
    const client = await createGrpcHealthClient(server.port);
    cleanups.add(() => client.close());

    await expect(grpcCheck(client, 'herald.v1.Nope')).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });

  it('keeps NOT_SERVING when a service is set SERVING after shutdown', async () => {
    const health = createHealthService();
    const client = connectClient(health);
    health.setStatus('herald.v1.NotificationService', 'SERVING');

    health.shutdown();
    health.setStatus('herald.v1.NotificationService', 'SERVING');

    const overall = await client.check({ service: '' }, { timeoutMs: deadlineMs });
    const service = await client.check(
      { service: 'herald.v1.NotificationService' },
      { timeoutMs: deadlineMs },
    );
    expect([overall.status, service.status]).toEqual([
      ServingStatus.NOT_SERVING,
      ServingStatus.NOT_SERVING,
    ]);
  });
});

describe('grpc.health.v1.Health/Watch', () => {
  const cleanups = createCleanups();
  afterEach(() => cleanups.runAll());

  it('streams SERVING then NOT_SERVING and ends when shutdown() drains the server', async () => {
    const health = createHealthService();
    const server = await startServer(health);
    cleanups.add(() => server.close());
    const client = await createGrpcHealthClient(server.port);
    cleanups.add(() => client.close());
    const call = client.Watch({ service: '' }, { deadline: Date.now() + deadlineMs });
    const updates = call[Symbol.asyncIterator]() as AsyncIterator<HealthResponse>;

    expect((await updates.next()).value).toEqual({ status: 'SERVING' });
    health.shutdown();
    expect((await updates.next()).value).toEqual({ status: 'NOT_SERVING' });
    expect((await updates.next()).done).toBe(true);
  });

  it('streams SERVICE_UNKNOWN then each change when the service becomes known later', async () => {
    const health = createHealthService();
    const client = createClient(
      Health,
      createRouterTransport((router) => health.register(router)),
    );
    const abort = new AbortController();
    cleanups.add(() => abort.abort());
    const updates = client
      .watch(
        { service: 'herald.v1.NotificationService' },
        { signal: abort.signal, timeoutMs: deadlineMs },
      )
      [Symbol.asyncIterator]();

    expect((await updates.next()).value).toMatchObject({ status: ServingStatus.SERVICE_UNKNOWN });
    health.setStatus('herald.v1.NotificationService', 'SERVING');
    expect((await updates.next()).value).toMatchObject({ status: ServingStatus.SERVING });
    health.setStatus('herald.v1.NotificationService', 'SERVING');
    health.setStatus('herald.v1.NotificationService', 'NOT_SERVING');
    expect((await updates.next()).value).toMatchObject({ status: ServingStatus.NOT_SERVING });
  });

  it('ends the handler when the caller cancels the call', async () => {
    const handlerDone = Promise.withResolvers<void>();
    const observeEnd: Interceptor = (next) => async (request) => {
      const response = await next(request);
      if (!response.stream) return response;
      const { message } = response;
      return {
        ...response,
        message: (async function* () {
          try {
            yield* message;
          } finally {
            handlerDone.resolve();
          }
        })(),
      };
    };
    const health = createHealthService();
    const server = await startServer(health, [observeEnd]);
    cleanups.add(() => server.close());
    const transport = createGrpcTransport({ baseUrl: server.url });
    const client = createClient(Health, transport);
    const abort = new AbortController();
    const updates = client
      .watch({ service: '' }, { signal: abort.signal, timeoutMs: deadlineMs })
      [Symbol.asyncIterator]();
    expect((await updates.next()).value).toMatchObject({ status: ServingStatus.SERVING });

    abort.abort();

    const error = await rejection(updates.next());
    expect(error.code).toBe(Code.Canceled);
    await expect(within(handlerDone.promise, 'the Watch handler to end')).resolves.toBeUndefined();
  });
});
