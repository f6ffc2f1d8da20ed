/**
 * authInterceptor beyond the first check: the per-caller cap on RPCs other than Send (each caller
 * a bucket of its own; a user is a (tenant, user) pair, and both may contain any character), and
 * the credential of a stream checked again while it runs.
 */
import {
  Code,
  ConnectError,
  createContextValues,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
} from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/domain/access.js';
import { UnauthenticatedError } from '../../src/domain/errors.js';
import { authInterceptor } from '../../src/server/auth.js';

const user = (tenantId: string, userId: string): Principal => ({
  tenantId,
  kind: 'user',
  keyId: null,
  userId,
  scopes: [],
});

/** An interceptor at 1 call/s (bursts of 2) whose callers are named by the authorization header. */
function capped(principals: Record<string, Principal>) {
  const intercept = authInterceptor({
    callsPerSecond: 1,
    now: () => 0,
    authenticator: {
      authenticate: (authorization) =>
        Promise.resolve(principals[authorization ?? ''] as Principal),
      forget: () => undefined,
    },
  })(() => Promise.resolve({} as never));
  return async (caller: string): Promise<string> => {
    const req = {
      service: { typeName: 'herald.v1.InboxService' },
      method: { name: 'GetUnreadCount' },
      header: new Headers({ authorization: caller }),
      contextValues: createContextValues(),
    } as unknown as UnaryRequest;
    try {
      await intercept(req);
      return 'ok';
    } catch (err) {
      return Code[ConnectError.from(err).code];
    }
  };
}

describe('the per-caller cap', () => {
  it('keeps the buckets of users apart whose tenant and user ids join to the same text', async () => {
    const call = capped({ a: user('acme', 'x/y'), b: user('acme/x', 'y') });

    expect([await call('a'), await call('a'), await call('a')]).toEqual([
      'ok',
      'ok',
      'ResourceExhausted',
    ]);
    expect(await call('b')).toBe('ok');
  });
});

describe('a stream', () => {
  it('is checked again before a message once the interval has passed, and ends when the check fails', async () => {
    let clock = 0;
    let expired = false;
    const checks: number[] = [];
    const intercept = authInterceptor({
      callsPerSecond: 1_000,
      recheckMs: 1_000,
      now: () => clock,
      authenticator: {
        authenticate: () => {
          checks.push(clock);
          return expired
            ? Promise.reject(new UnauthenticatedError('user token rejected: it has expired'))
            : Promise.resolve(user('acme', 'alice'));
        },
        forget: () => undefined,
      },
    })(async () => {
      await Promise.resolve();
      return {
        stream: true,
        message: (async function* () {
          yield await Promise.resolve('first');
          clock = 999;
          yield 'second';
          clock = 1_000;
          expired = true;
          yield 'third';
        })(),
      } as unknown as StreamResponse;
    });
    const req = {
      stream: true,
      service: { typeName: 'herald.v1.NotificationService' },
      method: { name: 'WatchNotifications' },
      header: new Headers({ authorization: 'Bearer token' }),
      contextValues: createContextValues(),
    } as unknown as StreamRequest;

    const res = (await intercept(req)) as StreamResponse;
    const seen: unknown[] = [];
    const ended = await (async () => {
      for await (const m of res.message) seen.push(m);
    })().then(
      () => null,
      (err: unknown) => err,
    );

    expect(seen).toEqual(['first', 'second']);
    expect(ended).toBeInstanceOf(UnauthenticatedError);
    expect(checks).toEqual([0, 1_000]);
  });
});
