/** The webhook provider and its signature scheme, against a local receiver over real HTTP. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../../src/domain/errors.js';
import type { Notification } from '../../../src/domain/notification.js';
import { httpRequest } from '../../../src/providers/http.js';
import {
  createAddressGuard,
  REFUSED_AT_DELIVERY,
  type ResolveHost,
} from '../../../src/providers/private-addresses.js';
import {
  createWebhookProvider,
  signWebhook,
  verifyWebhookSignature,
  webhookProviderConfig,
  type WebhookProviderConfig,
} from '../../../src/providers/webhook.js';
import {
  startHttpFake,
  type HttpFake,
  type RecordedRequest,
} from '../../support/fakes/http-fake.js';
import { storedNotification } from '../../support/notification.js';

const DEFAULT_SECRET = 'default-secret-0123456789';
const TENANT_SECRET = 'tenant-two-secret-0123456789';
const NOW = Date.parse('2026-03-01T12:00:00Z');

let fake: HttpFake;

beforeEach(async () => {
  fake = await startHttpFake();
});

afterEach(async () => {
  await fake.close();
});

function config(overrides: Partial<WebhookProviderConfig> = {}): WebhookProviderConfig {
  return webhookProviderConfig.parse({
    type: 'webhook',
    url: `${fake.url}/default`,
    secret: DEFAULT_SECRET,
    tenantSecrets: { t2: TENANT_SECRET },
    ...overrides,
  });
}

function hook(overrides: Partial<Notification> = {}): Notification {
  return storedNotification({
    channel: 'webhook',
    to: `${fake.url}/hooks/orders?src=herald`,
    content: { body: 'order shipped', data: { orderId: 'o-42' } },
    category: 'orders',
    correlationId: 'corr-1',
    metadata: { shop: 's1' },
    createdAt: new Date('2026-03-01T11:59:00.123Z'),
    ...overrides,
  });
}

/** The error `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome))
    throw new Error(`expected a rejection, got ${JSON.stringify(outcome)}`);
  expect(outcome.error).toBeInstanceOf(Error);
  return outcome.error as Error;
}

function header(request: RecordedRequest | undefined, name: string): string {
  const value = request?.headers[name];
  if (typeof value !== 'string') throw new Error(`no ${name} header`);
  return value;
}

/** Verifies `request` as a receiver would, with `secret` and a clock at `now`. */
function verifies(request: RecordedRequest | undefined, secret: string, now = NOW): boolean {
  return verifyWebhookSignature({
    secret,
    timestamp: header(request, 'herald-webhook-timestamp'),
    body: request?.body ?? '',
    signature: header(request, 'herald-webhook-signature'),
    now,
  });
}

describe('webhookProviderConfig', () => {
  it('is rejected when the secret is shorter than 16 characters or a key is unknown', () => {
    expect(webhookProviderConfig.safeParse({ type: 'webhook', secret: 'short' }).success).toBe(
      false,
    );
    expect(
      webhookProviderConfig.safeParse({ type: 'webhook', secret: DEFAULT_SECRET, extra: 1 })
        .success,
    ).toBe(false);
  });

  it('fills in the name and empty tenant secrets when they are omitted', () => {
    expect(webhookProviderConfig.parse({ type: 'webhook', secret: DEFAULT_SECRET })).toEqual({
      type: 'webhook',
      name: 'webhook',
      secret: DEFAULT_SECRET,
      tenantSecrets: {},
    });
  });
});

describe('createWebhookProvider', () => {
  it('posts the signed JSON to the to URL and returns the receiver request id', async () => {
    fake.respond({ status: 200, headers: { 'x-request-id': 'req-77' }, body: { ok: true } });
    const n = hook();

    const result = await createWebhookProvider(config(), () => NOW).deliver(
      n,
      new AbortController().signal,
    );

    expect(result).toEqual({ providerMessageId: 'req-77' });
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/hooks/orders?src=herald');
    expect(request?.headers).toMatchObject({
      'content-type': 'application/json',
      'herald-webhook-id': n.id,
      'herald-webhook-timestamp': String(NOW / 1000),
      'idempotency-key': n.id,
    });
    expect(JSON.parse(request?.body ?? '')).toEqual({
      id: n.id,
      tenantId: 't1',
      userId: 'u1',
      channel: 'webhook',
      priority: 'normal',
      category: 'orders',
      content: { body: 'order shipped', data: { orderId: 'o-42' } },
      metadata: { shop: 's1' },
      correlationId: 'corr-1',
      attempt: 1,
      createdAt: '2026-03-01T11:59:00.123Z',
    });
    expect(header(request, 'herald-webhook-signature')).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(verifies(request, DEFAULT_SECRET)).toBe(true);
    expect(verifies(request, TENANT_SECRET)).toBe(false);
  });

  it('signs with the tenant secret when the tenant has one', async () => {
    fake.respond({ status: 204 });

    await createWebhookProvider(config(), () => NOW).deliver(
      hook({ tenantId: 't2' }),
      new AbortController().signal,
    );

    expect(verifies(fake.requests[0], TENANT_SECRET)).toBe(true);
    expect(verifies(fake.requests[0], DEFAULT_SECRET)).toBe(false);
  });

  it('signs with the default secret when the tenant id names an Object.prototype member', async () => {
    fake.respond({ status: 204 });

    await createWebhookProvider(config(), () => NOW).deliver(
      hook({ tenantId: 'constructor' }),
      new AbortController().signal,
    );

    expect(verifies(fake.requests[0], DEFAULT_SECRET)).toBe(true);
  });

  it('posts to the configured url, returning no message id, when the notification has no to', async () => {
    fake.respond({ status: 202 });

    const result = await createWebhookProvider(config(), () => NOW).deliver(
      hook({ to: null }),
      new AbortController().signal,
    );

    expect(result).toEqual({});
    expect(fake.requests[0]?.path).toBe('/default');
  });

  it('fails permanently, without a request, when there is neither a to nor a url', async () => {
    const provider = createWebhookProvider(config({ url: undefined }), () => NOW);

    const error = await rejection(
      provider.deliver(hook({ to: null }), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(fake.requests).toHaveLength(0);
  });

  it('fails permanently, without a request, when to is not an http(s) URL', async () => {
    const provider = createWebhookProvider(config(), () => NOW);

    const error = await rejection(
      provider.deliver(hook({ to: 'data:text/plain,hi' }), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(fake.requests).toHaveLength(0);
  });

  it('sends the same id with a fresh, valid signature on every retry', async () => {
    fake.enqueue({ status: 503 });
    fake.respond({ status: 200 });
    let clock = NOW;
    const provider = createWebhookProvider(config(), () => clock);
    const n = hook();

    await expect(provider.deliver(n, new AbortController().signal)).rejects.toBeInstanceOf(
      TransientDeliveryError,
    );
    clock += 90_000;
    await provider.deliver({ ...n, attempt: 2 }, new AbortController().signal);

    const [first, second] = fake.requests;
    expect(header(second, 'herald-webhook-id')).toBe(header(first, 'herald-webhook-id'));
    expect(header(second, 'herald-webhook-timestamp')).toBe(String((NOW + 90_000) / 1000));
    expect(verifies(second, DEFAULT_SECRET, clock)).toBe(true);
  });

  it("fails transiently, as its receiver's fault, when the notification's own to answers 503", async () => {
    fake.respond({ status: 503 });

    const error = await rejection(
      createWebhookProvider(config(), () => NOW).deliver(hook(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error.message).toContain('HTTP 503');
    expect((error as TransientDeliveryError).receiverFault).toBe(true);
  });

  it("fails transiently, as its receiver's fault, when nothing listens at the notification's own to", async () => {
    const error = await rejection(
      createWebhookProvider(config(), () => NOW).deliver(
        hook({ to: 'http://127.0.0.1:9/hook' }),
        new AbortController().signal,
      ),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as TransientDeliveryError).receiverFault).toBe(true);
  });

  it("fails transiently as the provider's fault when the configured url answers 503", async () => {
    fake.respond({ status: 503 });

    const error = await rejection(
      createWebhookProvider(config(), () => NOW).deliver(
        hook({ to: null }),
        new AbortController().signal,
      ),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as TransientDeliveryError).receiverFault).toBe(false);
  });

  it('fails permanently, without a request, when to carries credentials', async () => {
    const to = new URL(`${fake.url}/hooks`);
    to.username = 'user';
    to.password = 'secret';

    const error = await rejection(
      createWebhookProvider(config(), () => NOW).deliver(
        hook({ to: to.toString() }),
        new AbortController().signal,
      ),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toBe('webhook: the URL carries credentials (user:password@)');
    expect(fake.requests).toHaveLength(0);
  });

  it('fails transiently with a positive delay when a 429 carries a Retry-After date', async () => {
    const retryAt = new Date(Date.now() + 120_000).toUTCString();
    fake.respond({ status: 429, headers: { 'retry-after': retryAt } });

    const error = await rejection(
      createWebhookProvider(config(), () => NOW).deliver(hook(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    const delay = (error as TransientDeliveryError).retryAfterMs;
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(120_000);
  });

  it.each([400, 410])('fails permanently when the receiver answers %i', async (status) => {
    fake.respond({ status, body: { error: 'nope' } });

    const error = await rejection(
      createWebhookProvider(config(), () => NOW).deliver(hook(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toContain(`HTTP ${status}`);
  });

  it('fails transiently when the attempt is aborted while the receiver does not answer', async () => {
    fake.respond('hang');
    const controller = new AbortController();

    const delivery = rejection(
      createWebhookProvider(config(), () => NOW).deliver(hook(), controller.signal),
    );
    await fake.received(1);
    controller.abort();
    const error = await delivery;

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error.message).toContain('aborted');
  });
});

/** A resolver that knows only `table` (host name -> addresses) and counts its lookups. */
function resolverOf(table: Record<string, string[]>): ResolveHost & { calls: string[] } {
  const calls: string[] = [];
  const resolve = (hostname: string) => {
    calls.push(hostname);
    const addresses = table[hostname];
    if (addresses === undefined) {
      return Promise.reject(
        Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }),
      );
    }
    return Promise.resolve(
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };
  return Object.assign(resolve, { calls });
}

describe('createWebhookProvider with private addresses denied', () => {
  const TOKEN = 'receiver-token-4f1c';

  function denying(resolveHost?: ResolveHost) {
    return createWebhookProvider(config(), () => NOW, { privateAddresses: 'deny', resolveHost });
  }

  it.each([
    ['a loopback IP literal', (port: string) => `http://127.0.0.1:${port}/hooks/${TOKEN}`],
    [
      'an IPv4-mapped IPv6 literal of loopback',
      (port: string) => `http://[::ffff:127.0.0.1]:${port}/hooks/${TOKEN}`,
    ],
    [
      'a loopback literal as one number',
      (port: string) => `http://2130706433:${port}/hooks/${TOKEN}`,
    ],
  ])('fails permanently, without a request, naming the rule, when to is %s', async (_, urlFor) => {
    const error = await rejection(
      denying().deliver(hook({ to: urlFor(new URL(fake.url).port) }), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toBe(`webhook: refused to connect: ${REFUSED_AT_DELIVERY}`);
    expect(error.message).not.toContain(TOKEN);
    expect(fake.requests).toHaveLength(0);
  });

  it('fails permanently, without a request, when the system resolver gives a loopback address for to', async () => {
    const error = await rejection(
      denying().deliver(
        hook({ to: `http://localhost:${new URL(fake.url).port}/hooks/${TOKEN}` }),
        new AbortController().signal,
      ),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toMatch(
      /^webhook: refused to connect: the host of a webhook's to is a private/,
    );
    expect(error.message).toContain('HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny');
    expect(error.message).not.toContain(TOKEN);
    expect(fake.requests).toHaveLength(0);
  });

  it('fails permanently when any address of the host is private, even with a public one first', async () => {
    const resolve = resolverOf({ 'hooks.example.com': ['93.184.216.34', '10.0.0.5'] });

    const error = await rejection(
      denying(resolve).deliver(
        hook({ to: `http://hooks.example.com/hooks/${TOKEN}` }),
        new AbortController().signal,
      ),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toMatch(
      /^webhook: refused to connect: the host of a webhook's to is a private/,
    );
    expect(resolve.calls).toEqual(['hooks.example.com']);
  });

  it('fails transiently when the host name does not resolve', async () => {
    const error = await rejection(
      denying(resolverOf({})).deliver(
        hook({ to: `http://nowhere.example/hooks/${TOKEN}` }),
        new AbortController().signal,
      ),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error.message).toContain('ENOTFOUND');
  });

  it('posts to the configured url, a loopback address, when the notification has no to', async () => {
    fake.respond({ status: 204 });

    await denying().deliver(hook({ to: null }), new AbortController().signal);

    expect(fake.requests.map((r) => r.path)).toEqual(['/default']);
  });
});

describe('createAddressGuard', () => {
  it('connects to the address it resolved and checked, looked up once, keeping the host name in the request', async () => {
    fake.respond({ status: 200 });
    const port = new URL(fake.url).port;
    const resolve = resolverOf({ 'receiver.test': ['127.0.0.1'] });
    // Loopback allowed here, so the connection the guard makes can be watched arriving.
    const guard = createAddressGuard('hook', resolve, () => false);

    try {
      const response = await httpRequest('hook', `http://receiver.test:${port}/in`, {
        method: 'POST',
        headers: {},
        body: '{}',
        signal: new AbortController().signal,
        dispatcher: guard.dispatcher,
      });
      expect(response.status).toBe(200);
    } finally {
      await guard.close();
    }

    expect(fake.requests.map((r) => [r.path, r.headers.host])).toEqual([
      ['/in', `receiver.test:${port}`],
    ]);
    expect(resolve.calls).toEqual(['receiver.test']);
  });

  it('refuses, without a connection, the address a host name resolves to', async () => {
    const guard = createAddressGuard('hook', resolverOf({ 'receiver.test': ['127.0.0.1'] }));

    try {
      const error = await rejection(
        httpRequest('hook', `http://receiver.test:${new URL(fake.url).port}/in`, {
          method: 'POST',
          headers: {},
          signal: new AbortController().signal,
          dispatcher: guard.dispatcher,
        }),
      );
      expect(error).toBeInstanceOf(PermanentDeliveryError);
      expect(error.message).toMatch(
        /^hook: refused to connect: the host of a webhook's to is a private/,
      );
    } finally {
      await guard.close();
    }
    expect(fake.requests).toHaveLength(0);
  });
});

describe('verifyWebhookSignature', () => {
  const body = JSON.stringify({ id: 'n1', content: { body: 'hi' } });
  const timestamp = NOW / 1000;
  const signature = signWebhook(DEFAULT_SECRET, timestamp, body);
  const valid = { secret: DEFAULT_SECRET, timestamp, body, signature, now: NOW };

  it('is true for the signature signWebhook made, within the tolerance', () => {
    expect(verifyWebhookSignature(valid)).toBe(true);
    expect(verifyWebhookSignature({ ...valid, timestamp: String(timestamp) })).toBe(true);
    expect(verifyWebhookSignature({ ...valid, body: Buffer.from(body) })).toBe(true);
    expect(verifyWebhookSignature({ ...valid, now: NOW + 300_000 })).toBe(true);
  });

  it('is false when the secret is wrong', () => {
    expect(verifyWebhookSignature({ ...valid, secret: 'another-secret-0123456789' })).toBe(false);
  });

  it('is false when the body was tampered with', () => {
    expect(verifyWebhookSignature({ ...valid, body: body.replace('hi', 'ho') })).toBe(false);
  });

  it('is false when the timestamp was changed', () => {
    expect(verifyWebhookSignature({ ...valid, timestamp: timestamp + 1 })).toBe(false);
  });

  it('is false when the timestamp is stale or too far ahead', () => {
    expect(verifyWebhookSignature({ ...valid, now: NOW + 301_000 })).toBe(false);
    expect(verifyWebhookSignature({ ...valid, now: NOW - 301_000 })).toBe(false);
    expect(verifyWebhookSignature({ ...valid, now: NOW + 61_000, toleranceSeconds: 60 })).toBe(
      false,
    );
  });

  it('is false when the signature or the timestamp is malformed', () => {
    expect(verifyWebhookSignature({ ...valid, signature: signature.slice(3) })).toBe(false);
    expect(verifyWebhookSignature({ ...valid, signature: `${signature}00` })).toBe(false);
    expect(verifyWebhookSignature({ ...valid, signature: '' })).toBe(false);
    expect(verifyWebhookSignature({ ...valid, timestamp: `${timestamp}.5` })).toBe(false);
  });
});
