/** The Twilio SMS provider against a local fake of the Messages API, spoken to over real HTTP. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../../src/domain/errors.js';
import type { Notification } from '../../../src/domain/notification.js';
import {
  createTwilioProvider,
  twilioProviderConfig,
  type TwilioProviderConfig,
} from '../../../src/providers/twilio.js';
import { startHttpFake, type HttpFake } from '../../support/fakes/http-fake.js';
import { storedNotification } from '../../support/notification.js';

const TOKEN = 'auth-token-not-to-be-leaked';
const BODY = 'Your Herald code is 482913';

let fake: HttpFake;

beforeEach(async () => {
  fake = await startHttpFake();
});

afterEach(async () => {
  await fake.close();
});

function config(overrides: Partial<TwilioProviderConfig> = {}): TwilioProviderConfig {
  return twilioProviderConfig.parse({
    type: 'twilio',
    baseUrl: fake.url,
    accountSid: 'AC123',
    authToken: TOKEN,
    from: '+15005550006',
    ...overrides,
  });
}

function sms(overrides: Partial<Notification> = {}): Notification {
  return storedNotification({
    channel: 'sms',
    to: '+15555550100',
    content: { body: BODY },
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

function expectNoSecrets(error: Error): void {
  expect(error.message).not.toContain(BODY);
  expect(error.message).not.toContain(TOKEN);
}

describe('twilioProviderConfig', () => {
  it('fills in the name and base url when they are omitted', () => {
    const parsed = twilioProviderConfig.parse({
      type: 'twilio',
      accountSid: 'AC1',
      authToken: 't',
      messagingServiceSid: 'MG1',
    });
    expect(parsed).toMatchObject({ name: 'twilio', baseUrl: 'https://api.twilio.com' });
  });

  it('is rejected when both or neither of from and messagingServiceSid are given', () => {
    const base = { type: 'twilio', accountSid: 'AC1', authToken: 't' };
    expect(twilioProviderConfig.safeParse(base).success).toBe(false);
    expect(twilioProviderConfig.safeParse({ ...base, from: '' }).success).toBe(false);
    expect(
      twilioProviderConfig.safeParse({ ...base, from: '+15005550006', messagingServiceSid: 'MG1' })
        .success,
    ).toBe(false);
  });

  it('is rejected when it has an unknown key', () => {
    const input = { type: 'twilio', accountSid: 'AC1', authToken: 't', from: '+1', extra: 1 };
    expect(twilioProviderConfig.safeParse(input).success).toBe(false);
  });
});

describe('createTwilioProvider', () => {
  it('posts the form with basic auth and the idempotency token, and returns the sid', async () => {
    fake.respond({ status: 201, body: { sid: 'SM0123', status: 'queued' } });
    const n = sms();

    const result = await createTwilioProvider(config()).deliver(n, new AbortController().signal);

    expect(result).toEqual({ providerMessageId: 'SM0123' });
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/2010-04-01/Accounts/AC123/Messages.json');
    expect(request?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request?.headers.authorization).toBe(
      `Basic ${Buffer.from(`AC123:${TOKEN}`).toString('base64')}`,
    );
    expect(request?.headers['i-twilio-idempotency-token']).toBe(n.id);
    expect(Object.fromEntries(new URLSearchParams(request?.body))).toEqual({
      To: '+15555550100',
      From: '+15005550006',
      Body: BODY,
    });
  });

  it('sends MessagingServiceSid instead of From when a messaging service is configured', async () => {
    fake.respond({ status: 201, body: { sid: 'SM1' } });
    const provider = createTwilioProvider(config({ from: undefined, messagingServiceSid: 'MG9' }));

    await provider.deliver(sms(), new AbortController().signal);

    expect(Object.fromEntries(new URLSearchParams(fake.requests[0]?.body))).toEqual({
      To: '+15555550100',
      MessagingServiceSid: 'MG9',
      Body: BODY,
    });
  });

  it('fails transiently when Twilio answers 500', async () => {
    fake.respond({ status: 500, body: { code: 20500, message: 'Internal Server Error' } });

    const error = await rejection(
      createTwilioProvider(config()).deliver(sms(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error.message).toContain('HTTP 500');
    expect((error as TransientDeliveryError).retryAfterMs).toBeUndefined();
  });

  it('fails transiently with the Retry-After delay when Twilio answers 429', async () => {
    fake.respond({
      status: 429,
      headers: { 'retry-after': '7' },
      body: { code: 20429, message: 'Too Many Requests' },
    });

    const error = await rejection(
      createTwilioProvider(config()).deliver(sms(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as TransientDeliveryError).retryAfterMs).toBe(7_000);
  });

  it('fails permanently, naming the code, when Twilio rejects the recipient (21211)', async () => {
    fake.respond({
      status: 400,
      body: {
        code: 21211,
        message: "The 'To' number +15555550100 is not a valid phone number.",
        more_info: 'https://www.twilio.com/docs/errors/21211',
        status: 400,
      },
    });

    const error = await rejection(
      createTwilioProvider(config()).deliver(sms(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toContain('21211');
    expect(error.message).toContain('is not a valid phone number');
    expectNoSecrets(error);
  });

  it('keeps the body and the token out of the error when Twilio echoes them', async () => {
    fake.respond({
      status: 400,
      body: { code: 21610, message: `Blocked: "${BODY}" (token ${TOKEN})` },
    });

    const error = await rejection(
      createTwilioProvider(config()).deliver(sms(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error.message).toContain('21610');
    expectNoSecrets(error);
  });

  it('fails transiently, as a misconfiguration, when Twilio answers 401', async () => {
    fake.respond({ status: 401, body: { code: 20003, message: 'Authenticate' } });

    const error = await rejection(
      createTwilioProvider(config()).deliver(sms(), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error.message).toContain('HTTP 401');
    expect(error.message).toContain('misconfiguration');
    expectNoSecrets(error);
  });

  it('fails transiently when the attempt is aborted while Twilio does not answer', async () => {
    fake.respond('hang');
    const controller = new AbortController();

    const delivery = rejection(createTwilioProvider(config()).deliver(sms(), controller.signal));
    await fake.received(1);
    controller.abort();
    const error = await delivery;

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error.message).toContain('aborted');
  });

  it('fails transiently when the connection is refused', async () => {
    const provider = createTwilioProvider(config());
    await fake.close();

    const error = await rejection(provider.deliver(sms(), new AbortController().signal));

    expect(error).toBeInstanceOf(TransientDeliveryError);
    expectNoSecrets(error);
  });

  it('fails permanently, without calling Twilio, when the notification has no to', async () => {
    const error = await rejection(
      createTwilioProvider(config()).deliver(sms({ to: null }), new AbortController().signal),
    );

    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(fake.requests).toHaveLength(0);
  });
});
