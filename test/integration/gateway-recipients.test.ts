/**
 * Recipients through the GraphQL gateway (the `recipient` query and its mutations, for API keys)
 * and `previewTemplate`.
 */
import { randomUUID } from 'node:crypto';
import { createHeraldClient, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const MASTER = 'gateway-recipients-master-secret-0123456789';
const TENANT = 'tenant-gr';

let t: TestHerald;
let apiKey: string;
let herald: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald({
    gateway: true,
    env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: MASTER },
  });
  apiKey = await createTestApiKey(t.db.pool, TENANT, ['send', 'read', 'admin']);
  herald = createHeraldClient({ baseUrl: t.h2cUrl, apiKey });
});

afterAll(async () => {
  herald?.close();
  await t?.stop();
});

interface GqlResult<T> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

async function gql<T>(
  credential: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GqlResult<T>> {
  const fetchHandler = t.gatewayFetch;
  if (fetchHandler === null || t.gatewayUrl === null) throw new Error('no gateway');
  const res = await fetchHandler(
    new Request(t.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
      body: JSON.stringify({ query, variables }),
    }),
  );
  return (await res.json()) as GqlResult<T>;
}

const RECIPIENT = `userId email phone timeZone locale data { key value }
  pushTokens { token registeredAt } createdAt updatedAt`;

interface GqlRecipient {
  userId: string;
  email: string | null;
  phone: string | null;
  timeZone: string | null;
  locale: string | null;
  data: { key: string; value: string }[];
  pushTokens: { token: string; registeredAt: string }[];
  createdAt: string;
  updatedAt: string;
}

describe('recipient, upsertRecipient, registerPushToken, removePushToken, deleteRecipient', () => {
  it('keeps a recipient and its push tokens until it is deleted', async () => {
    const userId = `g-${randomUUID()}`;
    const upserted = await gql<{ upsertRecipient: GqlRecipient }>(
      apiKey,
      `mutation ($input: RecipientInput!) { upsertRecipient(input: $input) { ${RECIPIENT} } }`,
      {
        input: {
          userId,
          email: 'ada@example.com',
          phone: '+15550001234',
          timeZone: 'Europe/London',
          locale: 'en-GB',
          data: [{ key: 'plan', value: 'pro' }],
        },
      },
    );
    expect(upserted.errors).toBeUndefined();
    expect(upserted.data?.upsertRecipient).toMatchObject({
      userId,
      email: 'ada@example.com',
      phone: '+15550001234',
      timeZone: 'Europe/London',
      locale: 'en-GB',
      data: [{ key: 'plan', value: 'pro' }],
      pushTokens: [],
    });
    expect(Number.isNaN(Date.parse(upserted.data?.upsertRecipient.createdAt ?? ''))).toBe(false);

    const read = await gql<{ recipient: GqlRecipient }>(
      apiKey,
      `query ($userId: String!) { recipient(userId: $userId) { ${RECIPIENT} } }`,
      { userId },
    );
    expect(read.errors).toBeUndefined();
    expect(read.data?.recipient).toEqual(upserted.data?.upsertRecipient);

    const registered = await gql<{ registerPushToken: GqlRecipient }>(
      apiKey,
      `mutation ($userId: String!, $token: String!) {
        registerPushToken(userId: $userId, token: $token) { ${RECIPIENT} }
      }`,
      { userId, token: 'device-token-1' },
    );
    expect(registered.errors).toBeUndefined();
    expect(registered.data?.registerPushToken.email).toBe('ada@example.com');
    expect(registered.data?.registerPushToken.pushTokens.map((p) => p.token)).toEqual([
      'device-token-1',
    ]);
    // The gRPC side sees the same token: the gateway wrote through the api.
    const stored = await herald.recipients.getRecipient({ userId });
    expect(stored.recipient?.pushTokens.map((p) => p.token)).toEqual(['device-token-1']);

    const removeToken = `mutation ($userId: String!, $token: String!) {
      removePushToken(userId: $userId, token: $token)
    }`;
    const removed = await gql<{ removePushToken: boolean }>(apiKey, removeToken, {
      userId,
      token: 'device-token-1',
    });
    expect(removed).toEqual({ data: { removePushToken: true } });
    const removedAgain = await gql<{ removePushToken: boolean }>(apiKey, removeToken, {
      userId,
      token: 'device-token-1',
    });
    expect(removedAgain).toEqual({ data: { removePushToken: false } });

    const deleteRecipient = `mutation ($userId: String!) { deleteRecipient(userId: $userId) }`;
    expect(await gql(apiKey, deleteRecipient, { userId })).toEqual({
      data: { deleteRecipient: true },
    });
    expect(await gql(apiKey, deleteRecipient, { userId })).toEqual({
      data: { deleteRecipient: false },
    });
    const gone = await gql(
      apiKey,
      `query ($userId: String!) { recipient(userId: $userId) { userId } }`,
      { userId },
    );
    expect(gone).toEqual({ data: { recipient: null } });
  });

  it('is BAD_USER_INPUT naming the field when an email is invalid, and stores nothing', async () => {
    const userId = `g-${randomUUID()}`;
    const res = await gql(
      apiKey,
      `mutation ($input: RecipientInput!) { upsertRecipient(input: $input) { userId } }`,
      { input: { userId, email: 'not-an-email' } },
    );
    expect(res.data).toBeNull();
    expect(res.errors).toHaveLength(1);
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      fieldViolations: [{ field: 'recipient.email' }],
    });
    const read = await gql(
      apiKey,
      `query ($userId: String!) { recipient(userId: $userId) { userId } }`,
      { userId },
    );
    expect(read).toEqual({ data: { recipient: null } });
  });

  it('is FORBIDDEN for a user token, even for its own user', async () => {
    const userId = `g-${randomUUID()}`;
    await herald.recipients.upsertRecipient({ recipient: { userId, email: 'u@example.com' } });
    const token = issueUserToken({ master: MASTER, tenantId: TENANT, userId });
    const read = await gql(
      token,
      `query ($userId: String!) { recipient(userId: $userId) { email } }`,
      { userId },
    );
    expect(read.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const write = await gql(
      token,
      `mutation ($userId: String!) { registerPushToken(userId: $userId, token: "t-1") { userId } }`,
      { userId },
    );
    expect(write.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await herald.recipients.getRecipient({ userId })).recipient?.pushTokens).toEqual([]);
  });
});

describe('previewTemplate', () => {
  const PREVIEW = `query ($id: ID!, $variables: [KeyValueInput!], $locale: String, $channel: Channel) {
    previewTemplate(id: $id, variables: $variables, locale: $locale, channel: $channel) {
      version
      contents { channel locale content { subject body html } }
      violations { field description }
    }
  }`;

  interface Preview {
    previewTemplate: {
      version: number;
      contents: {
        channel: string;
        locale: string;
        content: { subject: string | null; body: string | null; html: string | null };
      }[];
      violations: { field: string; description: string }[];
    };
  }

  async function createTemplate(id: string) {
    await herald.templates.createTemplate({
      template: {
        id,
        defaultLocale: 'en',
        variables: [
          { name: 'name', required: true },
          { name: 'carrier', defaultValue: 'the post' },
        ],
        locales: {
          en: {
            email: { subject: 'Shipped', html: '<p>Hi {{name}}, it comes with {{carrier}}.</p>' },
            sms: { text: 'Hi {{name}}, your order shipped' },
          },
          fr: { email: { subject: 'Expédiée', html: '<p>Bonjour {{name}}</p>' } },
        },
      },
    });
  }

  it('renders each channel with html escaping in email html only', async () => {
    const id = `gql-preview-${randomUUID().slice(0, 8)}`;
    await createTemplate(id);
    const res = await gql<Preview>(apiKey, PREVIEW, {
      id,
      variables: [{ key: 'name', value: '<Ada & "Bob">' }],
      locale: 'en-GB',
    });
    expect(res.errors).toBeUndefined();
    expect(res.data?.previewTemplate).toEqual({
      version: 1,
      contents: [
        {
          channel: 'EMAIL',
          locale: 'en',
          content: {
            subject: 'Shipped',
            body: null,
            html: '<p>Hi &lt;Ada &amp; &quot;Bob&quot;&gt;, it comes with the post.</p>',
          },
        },
        {
          channel: 'SMS',
          locale: 'en',
          content: { subject: null, body: 'Hi <Ada & "Bob">, your order shipped', html: null },
        },
      ],
      violations: [],
    });
  });

  it('reports a missing required variable as a violation, not an error', async () => {
    const id = `gql-preview-${randomUUID().slice(0, 8)}`;
    await createTemplate(id);
    const res = await gql<Preview>(apiKey, PREVIEW, { id, locale: 'fr-CA', channel: 'EMAIL' });
    expect(res.errors).toBeUndefined();
    expect(res.data?.previewTemplate.contents).toMatchObject([
      { channel: 'EMAIL', locale: 'fr', content: { subject: 'Expédiée' } },
    ]);
    expect(res.data?.previewTemplate.violations.map((v) => v.field)).toEqual([
      'template.variables.name',
    ]);
  });

  it('is NOT_FOUND for an unknown template', async () => {
    const res = await gql<Preview>(apiKey, PREVIEW, { id: `no-such-${randomUUID().slice(0, 8)}` });
    expect(res.data).toBeNull();
    expect(res.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});
