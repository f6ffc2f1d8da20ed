import { fromBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, file_google_protobuf_timestamp } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, createRouterTransport } from '@connectrpc/connect';
import type { ConnectRouter, Interceptor } from '@connectrpc/connect';
import { createAsyncIterable } from '@connectrpc/connect/protocol';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { file_health_v1_health } from '@herald/client/gen/health/v1/health_pb';
import {
  NotificationService,
  NotificationStatus,
  file_herald_v1_notification,
} from '@herald/client/gen/herald/v1/notification_pb';
import { ServerReflection } from '@herald/client/gen/grpc/reflection/v1/reflection_pb';
import type {
  ServerReflectionRequestSchema,
  ServerReflectionResponse,
} from '@herald/client/gen/grpc/reflection/v1/reflection_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthService } from '../../src/server/health.js';
import { registerReflection } from '../../src/server/reflection.js';
import { createBufCurl, type BufCurl, type BufResult } from '../support/buf.js';
import { startH2cServer, type H2cServer } from '../support/http-server.js';

function routes(router: ConnectRouter): void {
  router.service(NotificationService, {
    send: () => ({ id: 'ntf_fixed', status: NotificationStatus.PENDING }),
    getNotification: (request) => {
      throw new ConnectError(`notification ${request.id} not found`, Code.NotFound);
    },
  });
  createHealthService().register(router);
  registerReflection(router, [file_herald_v1_notification, file_health_v1_health]);
}

describe('ServerReflectionInfo via buf curl', () => {
  let server: H2cServer;
  let baseUrl: string;
  let bufCurl: BufCurl;
  const calledServices: string[] = [];
  const recordService: Interceptor = (next) => (req) => {
    calledServices.push(req.service.typeName);
    return next(req);
  };

  beforeAll(async () => {
    bufCurl = await createBufCurl();
    server = await startH2cServer(connectNodeAdapter({ routes, interceptors: [recordService] }));
    baseUrl = server.url;
  });

  afterAll(async () => {
    await server.close();
    await bufCurl.close();
  });

  /** Calls Send from JSON with buf curl limited to one reflection protocol, recording afresh. */
  function sendWithReflection(protocol: 'grpc-v1' | 'grpc-v1alpha'): Promise<BufResult> {
    calledServices.length = 0;
    return bufCurl(
      '--reflect-protocol',
      protocol,
      '-d',
      '{"userId":"u1","channel":"CHANNEL_EMAIL","content":{"subject":"s","body":"b"}}',
      `${baseUrl}/herald.v1.NotificationService/Send`,
    );
  }

  it('lists Herald, health and both reflection services when buf curl asks with --list-services', async () => {
    const result = await bufCurl('--list-services', baseUrl);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout.trim().split('\n').sort()).toEqual([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'herald.v1.NotificationService',
    ]);
  });

  it('lists the methods of every service when buf curl asks with --list-methods', async () => {
    const result = await bufCurl('--list-methods', baseUrl);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout.trim().split('\n').sort()).toEqual([
      'grpc.health.v1.Health/Check',
      'grpc.health.v1.Health/List',
      'grpc.health.v1.Health/Watch',
      'grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      'grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
      ...NotificationService.methods.map((m) => `herald.v1.NotificationService/${m.name}`).sort(),
    ]);
  });

  it('calls Send from JSON when buf curl has no schema but reflection v1', async () => {
    const result = await sendWithReflection('grpc-v1');

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual({
      id: 'ntf_fixed',
      status: 'NOTIFICATION_STATUS_PENDING',
    });
    expect(calledServices).toEqual([
      'grpc.reflection.v1.ServerReflection',
      'herald.v1.NotificationService',
    ]);
  });

  it('calls Send from JSON when buf curl is limited to reflection v1alpha', async () => {
    const result = await sendWithReflection('grpc-v1alpha');

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toMatchObject({ id: 'ntf_fixed' });
    expect(calledServices).toEqual([
      'grpc.reflection.v1alpha.ServerReflection',
      'herald.v1.NotificationService',
    ]);
  });

  it('exits with the gRPC code when the called method fails with NOT_FOUND', async () => {
    const result = await bufCurl(
      '-d',
      '{"id":"missing"}',
      `${baseUrl}/herald.v1.NotificationService/GetNotification`,
    );

    // buf curl reports an RPC failure as its gRPC code shifted left by three bits.
    expect(result.code).toBe(Code.NotFound << 3);
    expect(result.stderr).toContain('not_found');
  });

  it('reports an unknown method when buf curl names one the schema lacks', async () => {
    const result = await bufCurl(`${baseUrl}/herald.v1.NotificationService/Nope`);

    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('Nope');
  });
});

describe('ServerReflectionInfo', () => {
  const client = createClient(ServerReflection, createRouterTransport(routes));

  async function ask(
    ...requests: MessageInitShape<typeof ServerReflectionRequestSchema>[]
  ): Promise<ServerReflectionResponse[]> {
    const responses: ServerReflectionResponse[] = [];
    const stream = client.serverReflectionInfo(createAsyncIterable(requests), {
      timeoutMs: 10_000,
    });
    for await (const response of stream) {
      responses.push(response);
    }
    return responses;
  }

  function fileNames(response: ServerReflectionResponse | undefined): string[] {
    if (response?.messageResponse.case !== 'fileDescriptorResponse') {
      throw new Error(`expected files, got ${response?.messageResponse.case}`);
    }
    return response.messageResponse.value.fileDescriptorProto.map(
      (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
    );
  }

  function errorOf(
    response: ServerReflectionResponse | undefined,
  ): { errorCode: number } | undefined {
    return response?.messageResponse.case === 'errorResponse'
      ? response.messageResponse.value
      : undefined;
  }

  it('returns the file then its imports when asked for a file by name', async () => {
    const [response] = await ask({
      messageRequest: { case: 'fileByFilename', value: 'herald/v1/notification.proto' },
    });

    expect(fileNames(response)).toEqual([
      'herald/v1/notification.proto',
      ...file_herald_v1_notification.dependencies.map((d) => d.proto.name),
    ]);
    expect(fileNames(response)).toContain(file_google_protobuf_timestamp.proto.name);
  });

  it.each([
    ['herald.v1.NotificationService', 'herald/v1/notification.proto'],
    ['herald.v1.NotificationService.Send', 'herald/v1/notification.proto'],
    ['herald.v1.SendRequest', 'herald/v1/notification.proto'],
    ['herald.v1.SendRequest.user_id', 'herald/v1/notification.proto'],
    ['herald.v1.Content.DataEntry', 'herald/v1/notification.proto'],
    ['herald.v1.WatchNotificationsRequest.target', 'herald/v1/notification.proto'],
    ['herald.v1.Channel', 'herald/v1/notification.proto'],
    ['herald.v1.CHANNEL_EMAIL', 'herald/v1/notification.proto'],
    ['.herald.v1.Channel.CHANNEL_EMAIL', 'herald/v1/notification.proto'],
    ['google.protobuf.Timestamp', 'google/protobuf/timestamp.proto'],
    ['grpc.health.v1.HealthCheckResponse.ServingStatus', 'health/v1/health.proto'],
    ['grpc.reflection.v1alpha.ServerReflection', 'grpc/reflection/v1alpha/reflection.proto'],
  ])('returns the declaring file when asked for symbol %s', async (symbol, file) => {
    const [response] = await ask({
      messageRequest: { case: 'fileContainingSymbol', value: symbol },
    });

    expect(fileNames(response)[0]).toBe(file);
  });

  it('answers every request of one stream in order, echoing each request', async () => {
    const responses = await ask(
      { host: 'h', messageRequest: { case: 'listServices', value: '' } },
      { host: 'h', messageRequest: { case: 'fileContainingSymbol', value: 'herald.v1.Nope' } },
      { host: 'h', messageRequest: { case: 'fileByFilename', value: 'health/v1/health.proto' } },
    );

    expect(responses.map((r) => r.messageResponse.case)).toEqual([
      'listServicesResponse',
      'errorResponse',
      'fileDescriptorResponse',
    ]);
    expect(responses.map((r) => [r.validHost, r.originalRequest?.messageRequest.case])).toEqual([
      ['h', 'listServices'],
      ['h', 'fileContainingSymbol'],
      ['h', 'fileByFilename'],
    ]);
  });

  it.each<[string, MessageInitShape<typeof ServerReflectionRequestSchema>['messageRequest']]>([
    ['an unknown file', { case: 'fileByFilename', value: 'nope.proto' }],
    ['an unknown symbol', { case: 'fileContainingSymbol', value: 'herald.v1.Nope' }],
    [
      'an unknown extension',
      {
        case: 'fileContainingExtension',
        value: { containingType: 'herald.v1.Content', extensionNumber: 100 },
      },
    ],
    [
      'the extensions of an unknown type',
      { case: 'allExtensionNumbersOfType', value: 'herald.v1.Nope' },
    ],
  ])('answers NOT_FOUND in the stream when asked for %s', async (_, messageRequest) => {
    const [response] = await ask(
      { messageRequest },
      { messageRequest: { case: 'listServices', value: '' } },
    );

    expect(errorOf(response)).toMatchObject({ errorCode: Code.NotFound });
  });

  it('answers INVALID_ARGUMENT in the stream when the request sets no query', async () => {
    const [response] = await ask({ host: '' });

    expect(errorOf(response)).toMatchObject({ errorCode: Code.InvalidArgument });
  });

  it('returns no extension numbers when the type is known but not extended', async () => {
    const [response] = await ask({
      messageRequest: { case: 'allExtensionNumbersOfType', value: 'herald.v1.SendRequest' },
    });

    expect(response?.messageResponse).toMatchObject({
      case: 'allExtensionNumbersResponse',
      value: { baseTypeName: 'herald.v1.SendRequest', extensionNumber: [] },
    });
  });
});
