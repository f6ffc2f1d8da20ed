/**
 * The signal of a unary gRPC call answered by src/server/grpc-unary.ts (HandlerContext.signal),
 * as Connect's handlers set it: aborted when the call's deadline passes, when the client goes
 * away, when the server shuts down, and once the call is answered; and the answer's status.
 */
import http2 from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import { Channel, NotificationStatus, SendRequestSchema, createHeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope } from '../../src/server/grpc-unary.js';
import { createCleanups } from '../support/cleanups.js';
import { startUnaryServer } from '../support/unary-server.js';

const SEND = '/herald.v1.NotificationService/Send';

const cleanups = createCleanups();
afterEach(() => cleanups.runAll());

/** A server whose Send waits until its call's signal is aborted, then fails with the reason. */
async function waitingServer() {
  const started: HandlerContext[] = [];
  const shutdown = new AbortController();
  let startedOne: () => void = () => undefined;
  const server = await startUnaryServer({
    send(_req, ctx) {
      started.push(ctx);
      startedOne();
      return new Promise((_, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error));
      });
    },
    shutdownSignal: shutdown.signal,
    maxTimeoutMs: 60_000,
  });
  const session = http2.connect(server.url);
  cleanups.add(async () => {
    session.destroy();
    await server.close();
  });
  const request = envelope(
    toBinary(
      SendRequestSchema,
      create(SendRequestSchema, { userId: 'u', channel: Channel.IN_APP, content: { body: 'x' } }),
    ),
  );

  /** Sends one call; resolves with its grpc-status once it is answered. */
  function send(headers: Record<string, string> = {}) {
    const stream = session.request({
      ':method': 'POST',
      ':path': SEND,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let status: string | undefined;
    stream.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
    stream.on(
      'trailers',
      (h: http2.IncomingHttpHeaders) => (status = h['grpc-status'] as string | undefined),
    );
    stream.on('data', () => undefined);
    const answered = new Promise<string | undefined>((resolve) => {
      stream.on('close', () => resolve(status));
      stream.on('error', () => resolve(status));
    });
    stream.end(request);
    return { stream, answered };
  }

  /** Resolves once `n` calls have reached the implementation. */
  async function untilStarted(n: number) {
    while (started.length < n) {
      await new Promise<void>((resolve) => (startedOne = resolve));
    }
  }
  return { started, shutdown, send, untilStarted };
}

describe('the signal of a unary gRPC call answered by the fast path', () => {
  it('is aborted with DeadlineExceeded when the grpc-timeout passes, and the client gets DEADLINE_EXCEEDED', async () => {
    const s = await waitingServer();
    const call = s.send({ 'grpc-timeout': '200m' });
    await s.untilStarted(1);
    const ctx = s.started[0] as HandlerContext;
    const left = ctx.timeoutMs();
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(200);

    expect(await call.answered).toBe(String(Code.DeadlineExceeded));
    expect(ConnectError.from(ctx.signal.reason).code).toBe(Code.DeadlineExceeded);
  });

  it('has no deadline when the client gives none', async () => {
    const s = await waitingServer();
    const call = s.send();
    await s.untilStarted(1);
    expect((s.started[0] as HandlerContext).timeoutMs()).toBeUndefined();
    call.stream.close(http2.constants.NGHTTP2_CANCEL);
    await call.answered;
  });

  it('is aborted with Canceled when the client resets the stream', async () => {
    const s = await waitingServer();
    const call = s.send();
    await s.untilStarted(1);
    const ctx = s.started[0] as HandlerContext;
    expect(ctx.signal.aborted).toBe(false);

    call.stream.close(http2.constants.NGHTTP2_CANCEL);
    await call.answered;
    if (!ctx.signal.aborted) {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    }

    expect(ConnectError.from(ctx.signal.reason)).toMatchObject({
      code: Code.Canceled,
      rawMessage: 'the client cancelled',
    });
  });

  it('is aborted with the shutdown reason at shutdown, for every call in flight', async () => {
    const s = await waitingServer();
    const calls = Array.from({ length: 25 }, () => s.send());
    await s.untilStarted(25);

    s.shutdown.abort(new ConnectError('the server is shutting down', Code.Unavailable));
    const statuses = await Promise.all(calls.map((c) => c.answered));

    expect(new Set(statuses)).toEqual(new Set([String(Code.Unavailable)]));
    for (const ctx of s.started) {
      expect(ConnectError.from(ctx.signal.reason).rawMessage).toBe('the server is shutting down');
    }
  });

  it('is aborted once the call is answered', async () => {
    let seen: HandlerContext | undefined;
    const server = await startUnaryServer({
      send(_req, ctx) {
        seen = ctx;
        expect(ctx.signal.aborted).toBe(false);
        return { id: 'n1', status: NotificationStatus.PENDING };
      },
    });
    cleanups.add(() => server.close());
    const client = createHeraldClient({ baseUrl: server.url, protocol: 'grpc' });

    const res = await client.send({ userId: 'u', channel: Channel.IN_APP, content: { body: 'x' } });

    expect(res.id).toBe('n1');
    expect(seen?.signal.aborted).toBe(true);
    expect(ConnectError.from(seen?.signal.reason).rawMessage).toBe('the call has ended');
  });
});
