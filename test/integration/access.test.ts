/**
 * RELIABILITY R13: tenants, API keys and user tokens. Two tenants; every cross-tenant read, a
 * revoked key, a missing scope, no key, forged and `alg=none` and expired JWTs are all denied, no
 * row leaks, and a dump of the database holds no usable key.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { promisify } from 'node:util';
import { create, toJsonString } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import {
  Channel,
  ListApiKeysResponseSchema,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type WatchNotificationsResponse,
} from '@herald/client';
import {
  HealthCheckRequestSchema,
  Health,
  HealthCheckResponse_ServingStatus,
} from '@herald/client/gen/health/v1/health_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../../src/domain/access.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { rejection } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const MASTER = 'access-test-master-secret-0123456789abcdef';

let t: TestHerald;
const clients: HeraldClient[] = [];
const keys: Record<string, string> = {};

function clientWith(apiKey?: string): HeraldClient {
  const c = createHeraldClient({ baseUrl: t.h2cUrl, apiKey });
  clients.push(c);
  return c;
}

const makeKey = (tenant: string, scopes: Scope[]) => createTestApiKey(t.db.pool, tenant, scopes);

const email = (userId: string, subject = 's') => ({
  userId,
  channel: Channel.EMAIL,
  to: 'a@example.com',
  content: { subject, body: 'b' },
});

beforeAll(async () => {
  t = await startTestHerald({ env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: MASTER } });
  keys.a = await makeKey('tenant-a', ['send', 'read', 'admin']);
  keys.aRead = await makeKey('tenant-a', ['read']);
  keys.aSend = await makeKey('tenant-a', ['send']);
  keys.b = await makeKey('tenant-b', ['send', 'read', 'admin']);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

describe('API keys', () => {
  it('refuses every RPC without credentials, but leaves health open', async () => {
    const anonymous = clientWith();
    for (const call of [
      () => anonymous.send(email('u1')),
      () => anonymous.getNotification({ id: '01890000-0000-7000-8000-000000000000' }),
      () => anonymous.listNotifications({}),
      () => anonymous.deadLetters.listDeadLetters({}),
      () => anonymous.cancelNotification({ id: '01890000-0000-7000-8000-000000000000' }),
    ]) {
      const err = await rejection(call());
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toMatch(/missing credentials/);
    }
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.h2cUrl }));
    const res = await health.check(create(HealthCheckRequestSchema, { service: '' }));
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it('refuses malformed, unknown and wrongly-typed credentials', async () => {
    const real = keys.a as string;
    const forged = `${real.slice(0, -4)}AAAA`; // the right prefix, another secret
    for (const [credential, reason] of [
      ['hk_short_x', /malformed API key/],
      [forged, /unknown API key/],
      ['hk_000000000000_' + 'A'.repeat(43), /unknown API key/],
      ['not-a-key-nor-a-token', /user token rejected/],
    ] as const) {
      const err = await rejection(clientWith(credential).listNotifications({}));
      expect(err.code, credential).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toMatch(reason);
    }
    const basic = createHeraldClient({
      baseUrl: t.h2cUrl,
      headers: { authorization: 'Basic Zm9v' },
    });
    clients.push(basic);
    expect((await rejection(basic.listNotifications({}))).code).toBe(Code.Unauthenticated);
  });

  it('keeps each tenant to its own notifications', async () => {
    const a = clientWith(keys.a);
    const b = clientWith(keys.b);
    const sent = await a.send(email('u-shared', 'tenant a only'));
    await b.send(email('u-shared', 'tenant b only'));

    expect((await a.getNotification({ id: sent.id })).notification?.id).toBe(sent.id);
    expect((await rejection(b.getNotification({ id: sent.id }))).code).toBe(Code.NotFound);
    expect((await rejection(b.cancelNotification({ id: sent.id }))).code).toBe(Code.NotFound);
    expect((await rejection(b.deadLetters.getDeadLetter({ id: sent.id }))).code).toBe(
      Code.NotFound,
    );
    const listed = await b.listNotifications({ userId: 'u-shared', pageSize: 100 });
    expect(listed.notifications.map((n) => n.content?.subject)).toEqual(['tenant b only']);
    const watch = b.watchNotifications({ target: { case: 'notificationId', value: sent.id } });
    expect((await rejection(watch[Symbol.asyncIterator]().next())).code).toBe(Code.NotFound);
  });

  it('enforces each RPC’s scope', async () => {
    const reader = clientWith(keys.aRead);
    const sender = clientWith(keys.aSend);
    const denied = await rejection(reader.send(email('u1')));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).toBe('Send needs the send scope');
    const { id } = await sender.send(email('u1'));
    expect((await rejection(sender.getNotification({ id }))).code).toBe(Code.PermissionDenied);
    expect((await reader.getNotification({ id })).notification?.id).toBe(id);
    expect((await rejection(reader.deadLetters.replayDeadLetters({ ids: [id] }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await rejection(sender.admin.listApiKeys({}))).code).toBe(Code.PermissionDenied);
  });

  it('answers a send-only key’s recipient writes with what it set, not the stored contact data', async () => {
    const full = clientWith(keys.a);
    const sender = clientWith(keys.aSend);
    const userId = `dana-${Date.now()}`;
    await full.recipients.upsertRecipient({
      recipient: {
        userId,
        email: 'dana@example.com',
        phone: '+15550001111',
        data: { plan: 'gold' },
      },
    });
    await full.recipients.registerPushToken({ userId, token: 'device-of-dana' });

    const registered = await sender.recipients.registerPushToken({ userId, token: 'new-device' });

    expect(registered.recipient?.userId).toBe(userId);
    expect(registered.recipient?.email).toBe('');
    expect(registered.recipient?.phone).toBe('');
    expect(registered.recipient?.data).toEqual({});
    expect(registered.recipient?.pushTokens.map((t) => t.token)).toEqual(['new-device']);
    const upserted = await sender.recipients.upsertRecipient({
      recipient: { userId, email: 'dana@example.org' },
    });
    expect(upserted.recipient?.email).toBe('dana@example.org');
    expect(upserted.recipient?.pushTokens).toEqual([]);
    // Stored in full all the same, and shown in full to a key that may read.
    const stored = (await full.recipients.getRecipient({ userId })).recipient;
    expect(stored?.pushTokens.map((t) => t.token)).toEqual(['new-device', 'device-of-dana']);
    const again = await full.recipients.registerPushToken({ userId, token: 'new-device' });
    expect(again.recipient?.email).toBe('dana@example.org');
    expect(again.recipient?.pushTokens).toHaveLength(2);
  });

  it('creates, lists and revokes keys through AdminService; a revoked key stops working', async () => {
    const admin = clientWith(keys.a);
    const created = await admin.admin.createApiKey({ name: 'worker svc', scopes: ['read'] });
    expect(created.apiKey).toMatch(/^hk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created.key?.scopes).toEqual(['read']);
    const fresh = clientWith(created.apiKey);
    expect((await fresh.listNotifications({})).notifications).toBeInstanceOf(Array);

    const listed = await admin.admin.listApiKeys({});
    expect(listed.keys.map((k) => k.id)).toContain(created.key?.id);
    expect(toJsonString(ListApiKeysResponseSchema, listed)).not.toContain(
      created.apiKey.slice(-43),
    );

    // Another tenant's admin cannot see or revoke it.
    const other = clientWith(keys.b);
    expect((await other.admin.listApiKeys({})).keys.map((k) => k.id)).not.toContain(
      created.key?.id,
    );
    expect((await rejection(other.admin.revokeApiKey({ id: created.key?.id ?? '' }))).code).toBe(
      Code.NotFound,
    );

    const revoked = await admin.admin.revokeApiKey({ id: created.key?.id ?? '' });
    expect(revoked.key?.revokedAt).toBeDefined();
    const err = await rejection(fresh.listNotifications({}));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe('the API key is revoked');
    // Revoking again succeeds and changes nothing.
    const again = await admin.admin.revokeApiKey({ id: created.key?.id ?? '' });
    expect(again.key?.revokedAt).toEqual(revoked.key?.revokedAt);

    const bad = await rejection(admin.admin.createApiKey({ name: '', scopes: ['send', 'fly'] }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toBe(
      'name: must be 1 to 128 characters; scopes[1]: must be one of send, read, admin',
    );
  });

  it('stores no usable key: a pg_dump holds prefixes and hashes only', async () => {
    const { stdout } = await promisify(execFile)('pg_dump', [
      '--data-only',
      '--table=api_key',
      t.db.url,
    ]);
    expect(stdout).toContain((keys.a as string).slice(0, 15)); // the public prefix
    for (const key of Object.values(keys)) {
      expect(stdout).not.toContain(key);
      expect(stdout).not.toContain(key.slice(16)); // the secret part
    }
  });
});

describe('user tokens', () => {
  const token = (userId: string, tenantId = 'tenant-a', ttlSeconds = 300, now = Date.now()) =>
    issueUserToken({ master: MASTER, tenantId, userId, ttlSeconds, now });

  it('read and watch only the user’s own notifications', async () => {
    const service = clientWith(keys.a);
    const mine = await service.send(email('alice', 'for alice'));
    const theirs = await service.send(email('bob', 'for bob'));
    const alice = clientWith(token('alice'));

    expect((await alice.getNotification({ id: mine.id })).notification?.userId).toBe('alice');
    expect((await rejection(alice.getNotification({ id: theirs.id }))).code).toBe(Code.NotFound);
    const listed = await alice.listNotifications({ pageSize: 100 });
    expect(new Set(listed.notifications.map((n) => n.userId))).toEqual(new Set(['alice']));
    expect((await rejection(alice.listNotifications({ userId: 'bob' }))).code).toBe(
      Code.PermissionDenied,
    );
    const watchBob = alice.watchNotifications({ target: { case: 'userId', value: 'bob' } });
    expect((await rejection(watchBob[Symbol.asyncIterator]().next())).code).toBe(
      Code.PermissionDenied,
    );
    const watchTheirs = alice.watchNotifications({
      target: { case: 'notificationId', value: theirs.id },
    });
    expect((await rejection(watchTheirs[Symbol.asyncIterator]().next())).code).toBe(Code.NotFound);
    // A bad id is named as the request names it, before anything is read.
    const watchBad = alice.watchNotifications({
      target: { case: 'notificationId', value: 'nope' },
    });
    const bad = await rejection(watchBad[Symbol.asyncIterator]().next());
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toContain('notification_id');
    const stop = new AbortController();
    const watchMine = alice.watchNotifications(
      { target: { case: 'notificationId', value: mine.id } },
      { signal: stop.signal },
    );
    const first: IteratorResult<WatchNotificationsResponse> =
      await watchMine[Symbol.asyncIterator]().next();
    expect(first.done ? null : first.value.notification?.id).toBe(mine.id);
    stop.abort();

    // Only reads: no sending, cancelling, dead letters or administration.
    for (const call of [
      () => alice.send(email('alice')),
      () => alice.cancelNotification({ id: mine.id }),
      () => alice.deadLetters.listDeadLetters({}),
      () => alice.admin.listApiKeys({}),
    ]) {
      expect((await rejection(call())).code).toBe(Code.PermissionDenied);
    }
    // Another tenant's token for a user of the same name sees nothing of tenant a.
    const otherAlice = clientWith(token('alice', 'tenant-b'));
    expect((await rejection(otherAlice.getNotification({ id: mine.id }))).code).toBe(Code.NotFound);
    expect(NotificationStatus[mine.status]).toBeDefined();
  });

  it('watches the token’s own feed when a user token leaves user_id empty', async () => {
    const service = clientWith(keys.a);
    const user = `carol-${Date.now()}`;
    await service.send(email(`${user}-other`, 'not hers'));
    const latest = await service.send(email(user, 'hers'));
    const stop = new AbortController();
    const stream = clientWith(token(user))
      .watchNotifications(
        { target: { case: 'userId', value: '' }, initialCount: 1 },
        { signal: stop.signal },
      )
      [Symbol.asyncIterator]();
    try {
      // The user's latest notification comes first, read once the stream is live.
      const first = await stream.next();
      expect(first.done ? null : first.value.notification?.id).toBe(latest.id);
      await service.send(email(`${user}-other`, 'not hers either'));
      const next = await service.send(email(user, 'hers too'));
      const seen: string[] = [];
      for (;;) {
        const r = await stream.next();
        if (r.done) throw new Error('the watch ended');
        seen.push(r.value.notification?.userId ?? '');
        if (r.value.notification?.id === next.id) break;
      }
      expect(new Set(seen)).toEqual(new Set([user]));
    } finally {
      stop.abort();
    }
  });

  it('refuses forged, alg=none, expired and wrong-audience tokens', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: 'herald',
      aud: 'herald-api',
      sub: 'alice',
      tid: 'tenant-a',
      iat: now,
      exp: now + 300,
    };
    const sign = (secret: string | Buffer, header: object, body: object) => {
      const input = `${b64(header)}.${b64(body)}`;
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    };
    const forged = sign('not-the-tenant-secret', { alg: 'HS256', typ: 'JWT' }, claims);
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    const expired = token('alice', 'tenant-a', 60, Date.now() - 3_600_000);
    const wrongAudience = issueUserToken({
      master: MASTER,
      tenantId: 'tenant-a',
      userId: 'alice',
      audience: 'someone-else',
    });
    for (const [name, credential] of Object.entries({ forged, none, expired, wrongAudience })) {
      const err = await rejection(clientWith(credential).listNotifications({}));
      expect(err.code, name).toBe(Code.Unauthenticated);
      expect(err.rawMessage, name).toMatch(/^user token rejected: /);
    }
  });
});

describe('open streams', () => {
  const inApp = (userId: string, title: string) => ({
    userId,
    channel: Channel.IN_APP,
    content: { title },
  });

  /**
   * A watch of `userId` by `client`, live once it has shown the notification sent (and delivered)
   * before it: that one has no change left to come.
   */
  async function liveWatch(client: HeraldClient, sender: HeraldClient, userId: string) {
    const before = await sender.send(inApp(userId, 'before'));
    await expect
      .poll(async () => (await sender.getNotification({ id: before.id })).notification?.status)
      .toBe(NotificationStatus.DELIVERED);
    const stream = client
      .watchNotifications({ target: { case: 'userId', value: userId }, initialCount: 1 })
      [Symbol.asyncIterator]();
    const first = await stream.next();
    expect(first.done ? null : first.value.notification?.id).toBe(before.id);
    return stream;
  }

  it('end with UNAUTHENTICATED, sending nothing more, once their API key is revoked', async () => {
    const admin = clientWith(keys.a);
    const created = await admin.admin.createApiKey({ name: 'watcher', scopes: ['read'] });
    const userId = `watched-${Date.now()}`;
    const stream = await liveWatch(clientWith(created.apiKey), admin, userId);

    await admin.admin.revokeApiKey({ id: created.key?.id ?? '' });
    // Streams check their credential again at most once a second, before the next message.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const after = await admin.send(inApp(userId, 'after the revocation'));

    // Nothing of the later notification: the stream ends instead.
    const outcome = await stream.next().then(
      (r) => ({ received: r.done ? 'the end of the stream' : r.value.notification?.id }),
      (err: unknown) => ({
        code: Code[ConnectError.from(err).code],
        message: ConnectError.from(err).rawMessage,
      }),
    );
    expect(outcome, `after: ${after.id}`).toEqual({
      code: 'Unauthenticated',
      message: 'the API key is revoked',
    });
  });
});
