/**
 * The FCM provider against a wire-level fake of Google's token endpoint and FCM HTTP v1 API: the
 * fake verifies the provider's signed JWT with the service account's public key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../../src/domain/errors.js';
import type { Notification } from '../../../src/domain/notification.js';
import type { Provider } from '../../../src/domain/ports.js';
import { createFcmProvider, fcmProviderConfig } from '../../../src/providers/fcm.js';
import { startFcmFake, type FcmFake } from '../../support/fakes/fcm.js';
import { storedNotification } from '../../support/notification.js';

const PROJECT = 'herald-test';
const CLIENT_EMAIL = 'herald@herald-test.iam.gserviceaccount.com';
const DEVICE_TOKEN =
  'fMI-wNvHQ0y3ZC0t7G2x1e:APA91bGv8nq2Qk3mX0yJ7oV5pL4rT9sW2aB6cD1eF8gH3iK0lM5nO7pQ2rS4tU6vW8xY';
const keys = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
const tmp = mkdtempSync(join(tmpdir(), 'herald-fcm-'));

let clock: number;
const now = () => clock;
let fake: FcmFake;

beforeEach(async () => {
  clock = Date.parse('2026-03-01T12:00:00Z');
  fake = await startFcmFake({
    publicKey: keys.publicKey,
    clientEmail: CLIENT_EMAIL,
    projectId: PROJECT,
    now,
  });
});
afterEach(() => fake.close());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function provider(overrides: Record<string, unknown> = {}): Provider {
  const config = fcmProviderConfig.parse({
    type: 'fcm',
    projectId: PROJECT,
    clientEmail: CLIENT_EMAIL,
    privateKey: keys.privateKey,
    tokenUri: fake.tokenUri,
    baseUrl: fake.url,
    ...overrides,
  });
  return createFcmProvider(config, now);
}

function push(overrides: Partial<Notification> = {}): Notification {
  return storedNotification({
    channel: 'push',
    to: DEVICE_TOKEN,
    content: { title: 'Order shipped', body: 'It arrives Tuesday', data: { orderId: '42' } },
    ...overrides,
  });
}

const live = () => new AbortController().signal;

describe('createFcmProvider', () => {
  it('returns the message name when FCM accepts the message', async () => {
    const n = push();

    const result = await provider().deliver(n, live());

    expect(fake.tokenRejections).toEqual([]);
    expect(fake.tokenRequests).toBe(1);
    expect(result).toEqual({ providerMessageId: `projects/${PROJECT}/messages/1` });
    expect(fake.sends).toHaveLength(1);
    expect(fake.sends[0]).toEqual({
      path: `/v1/projects/${PROJECT}/messages:send`,
      token: fake.issuedTokens[0],
      body: {
        message: {
          token: DEVICE_TOKEN,
          notification: { title: 'Order shipped', body: 'It arrives Tuesday' },
          data: { orderId: '42', herald_notification_id: n.id },
        },
      },
    });
  });

  it('reuses one access token when several deliveries follow each other', async () => {
    const fcm = provider();

    for (let i = 0; i < 3; i += 1) await fcm.deliver(push(), live());

    expect(fake.tokenRequests).toBe(1);
    expect(fake.sends.map((s) => s.token)).toEqual(Array(3).fill(fake.issuedTokens[0]));
  });

  it('requests a new access token when the cached one is within 60 s of expiry', async () => {
    const fcm = provider();
    await fcm.deliver(push(), live());

    clock += (3600 - 61) * 1000;
    await fcm.deliver(push(), live());
    expect(fake.tokenRequests).toBe(1);

    clock += 2 * 1000;
    await fcm.deliver(push(), live());
    expect(fake.tokenRequests).toBe(2);
    expect(fake.tokenRejections).toEqual([]);
    expect(fake.sends[2]?.token).toBe(fake.issuedTokens[1]);
    expect(fake.issuedTokens[1]).not.toBe(fake.issuedTokens[0]);
  });

  it('shares one token request when the first deliveries run concurrently', async () => {
    const fcm = provider();

    const results = await Promise.all(Array.from({ length: 5 }, () => fcm.deliver(push(), live())));

    expect(results).toHaveLength(5);
    expect(fake.tokenRequests).toBe(1);
    expect(fake.sends).toHaveLength(5);
  });

  it('keeps waiting for the shared token when another waiter aborts', async () => {
    const fcm = provider();
    fake.answerTokens('hold');
    const first = new AbortController();
    const firstDelivery = fcm.deliver(push(), first.signal);
    const secondDelivery = fcm.deliver(push(), live());
    await expect.poll(() => fake.tokenRequests).toBe(1);

    first.abort();
    await expect(firstDelivery).rejects.toBeInstanceOf(TransientDeliveryError);
    fake.releaseTokens();

    await expect(secondDelivery).resolves.toEqual({
      providerMessageId: `projects/${PROJECT}/messages/1`,
    });
    expect(fake.tokenRequests).toBe(1);
    expect(fake.sends).toHaveLength(1);
  });

  it('fails transiently and cancels the token request when the token endpoint hangs and the attempt aborts', async () => {
    const fcm = provider();
    fake.answerTokens('hold');
    const attempt = new AbortController();
    const delivery = fcm.deliver(push(), attempt.signal);
    await expect.poll(() => fake.tokenRequests).toBe(1);

    attempt.abort();

    await expect(delivery).rejects.toThrow(TransientDeliveryError);
    await expect.poll(() => fake.abandonedTokenRequests).toBe(1);
    await expect(fcm.deliver(push(), live())).resolves.toEqual({
      providerMessageId: `projects/${PROJECT}/messages/1`,
    });
    expect(fake.tokenRequests).toBe(2);
  });

  it.each([
    ['unregistered', 'UNREGISTERED'],
    ['invalid-argument', 'INVALID_ARGUMENT'],
    ['sender-id-mismatch', 'SENDER_ID_MISMATCH'],
  ] as const)('fails permanently when FCM answers %s', async (answer, errorCode) => {
    fake.answerSends(answer);

    const error = await provider()
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    const message = (error as Error).message;
    expect(message).toContain(errorCode);
    expect(message).toContain('invalid or unregistered token');
    expect(message).toContain(DEVICE_TOKEN.slice(0, 8));
    expect(message).not.toContain(DEVICE_TOKEN);
    expect(fake.sends).toHaveLength(1);
  });

  it('gets a new access token and succeeds in the same call when FCM answers 401 once', async () => {
    fake.answerSends('unauthenticated');

    const result = await provider().deliver(push(), live());

    expect(result).toEqual({ providerMessageId: `projects/${PROJECT}/messages/2` });
    expect(fake.tokenRequests).toBe(2);
    expect(fake.sends.map((s) => s.token)).toEqual(fake.issuedTokens);
    expect(fake.issuedTokens[1]).not.toBe(fake.issuedTokens[0]);
  });

  it('fails transiently after one retry when FCM answers 401 twice', async () => {
    fake.answerSends('unauthenticated', 'unauthenticated');

    const error = await provider()
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as Error).message).toContain('HTTP 401');
    expect(fake.sends).toHaveLength(2);
    expect(fake.tokenRequests).toBe(2);
  });

  it('fails transiently without a new token when APNs credentials are rejected', async () => {
    fake.answerSends('third-party-auth-error');

    const error = await provider()
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as Error).message).toContain('THIRD_PARTY_AUTH_ERROR');
    expect(fake.sends).toHaveLength(1);
    expect(fake.tokenRequests).toBe(1);
  });

  it('fails transiently when the service account may not send (403 without an FCM code)', async () => {
    fake.answerSends('permission-denied');

    await expect(provider().deliver(push(), live())).rejects.toThrow(TransientDeliveryError);
  });

  it('fails transiently with the Retry-After when FCM answers 429 QUOTA_EXCEEDED', async () => {
    fake.answerSends('quota-exceeded');

    const error = await provider()
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as TransientDeliveryError).retryAfterMs).toBe(30_000);
    expect((error as Error).message).toContain('QUOTA_EXCEEDED');
  });

  it.each([
    ['unavailable', 'HTTP 503'],
    ['internal', 'HTTP 500'],
  ] as const)('fails transiently when FCM answers %s', async (answer, status) => {
    fake.answerSends(answer);

    const error = await provider()
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as Error).message).toContain(status);
    expect((error as TransientDeliveryError).retryAfterMs).toBeUndefined();
  });

  it('fails transiently when the token endpoint answers 400 invalid_grant', async () => {
    fake.answerTokens('invalid-grant');

    const error = await provider()
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as Error).message).toMatch(
      /^fcm: OAuth token request failed: HTTP 400 invalid_grant/,
    );
    expect(fake.sends).toHaveLength(0);
  });

  it('fails transiently when the JWT is signed with another key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = other.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

    const error = await provider({ privateKey: pem })
      .deliver(push(), live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(fake.tokenRejections).toEqual(['bad signature']);
    expect((error as Error).message).not.toContain('PRIVATE KEY');
    expect(fake.sends).toHaveLength(0);
  });

  it('fails transiently when FCM hangs and the attempt aborts', async () => {
    fake.answerSends('hang');
    const attempt = new AbortController();
    const delivery = provider().deliver(push(), attempt.signal);
    await expect.poll(() => fake.sends.length).toBe(1);

    attempt.abort();

    await expect(delivery).rejects.toThrow(/fcm: request aborted/);
    await expect(delivery).rejects.toBeInstanceOf(TransientDeliveryError);
  });

  it('fails permanently without calling Google when the notification has no device token', async () => {
    await expect(provider().deliver(push({ to: null }), live())).rejects.toBeInstanceOf(
      PermanentDeliveryError,
    );
    expect(fake.tokenRequests).toBe(0);
    expect(fake.sends).toHaveLength(0);
  });

  it('delivers with credentials from a service-account file, using its token_uri', async () => {
    const file = join(tmp, 'service-account.json');
    writeFileSync(
      file,
      JSON.stringify({
        type: 'service_account',
        project_id: PROJECT,
        client_email: CLIENT_EMAIL,
        private_key: keys.privateKey,
        token_uri: fake.tokenUri,
      }),
    );
    const config = fcmProviderConfig.parse({
      type: 'fcm',
      projectId: PROJECT,
      serviceAccountFile: file,
      baseUrl: fake.url,
    });

    const result = await createFcmProvider(config, now).deliver(push(), live());

    expect(result.providerMessageId).toBeDefined();
    expect(fake.tokenRequests).toBe(1);
    expect(fake.tokenRejections).toEqual([]);
  });

  it('accepts a private key whose newlines arrived as literal \\n', async () => {
    const escaped = keys.privateKey.replaceAll('\n', '\\n');

    await expect(provider({ privateKey: escaped }).deliver(push(), live())).resolves.toEqual({
      providerMessageId: `projects/${PROJECT}/messages/1`,
    });
  });

  it('throws at construction, without echoing the key, when the private key is not a PEM', () => {
    expect(() => provider({ privateKey: 'not-a-key-s3cr3t' })).toThrow(
      /^fcm: privateKey is not a valid PEM private key$/,
    );
  });

  it('throws at construction when the private key is not RSA', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

    expect(() => provider({ privateKey: pem })).toThrow(/must be an RSA key/);
  });

  it('throws at construction, without echoing the file, when the service-account file is not JSON', () => {
    const file = join(tmp, 'broken.json');
    writeFileSync(file, keys.privateKey);

    let error: unknown;
    try {
      provider({ clientEmail: undefined, privateKey: undefined, serviceAccountFile: file });
    } catch (e) {
      error = e;
    }

    expect((error as Error).message).toBe(`fcm: ${file} is not valid JSON`);
  });
});

describe('fcmProviderConfig', () => {
  const base = { type: 'fcm', projectId: PROJECT };

  it('fills in the name and Google endpoints when they are omitted', () => {
    const config = fcmProviderConfig.parse({ ...base, clientEmail: CLIENT_EMAIL, privateKey: 'k' });

    expect(config).toMatchObject({
      name: 'fcm',
      tokenUri: 'https://oauth2.googleapis.com/token',
      baseUrl: 'https://fcm.googleapis.com',
    });
  });

  it.each([
    [
      'both credential forms',
      { clientEmail: CLIENT_EMAIL, privateKey: 'k', serviceAccountFile: 'f' },
      /not both/,
    ],
    ['no credentials', {}, /credentials required/],
    ['clientEmail without privateKey', { clientEmail: CLIENT_EMAIL }, /go together/],
    ['an unknown key', { clientEmail: CLIENT_EMAIL, privateKey: 'k', apiKey: 'x' }, /apiKey/],
  ])('rejects %s', (_, fields, message) => {
    const result = fcmProviderConfig.safeParse({ ...base, ...fields });

    expect(result.success).toBe(false);
    expect(result.error?.message).toMatch(message);
  });
});
