/**
 * The per-caller cap on RPCs other than Send (authInterceptor): each caller has a bucket of its
 * own. A user is a (tenant, user) pair, and both may contain any character.
 */
import { Code, ConnectError, createContextValues, type UnaryRequest } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/domain/access.js';
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
