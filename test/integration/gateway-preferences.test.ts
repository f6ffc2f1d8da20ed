/**
 * The gateway's preference and scheduling fields: `me { preferences }` and `updateMyPreferences`
 * for a user token (its own user only), and `deliverNow`.
 */
import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Channel, NotificationStatus, createHeraldClient, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const MASTER = 'gateway-preferences-master-secret-0123456789';
const TENANT = 'tenant-gp';

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
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql<T>(
  credential: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GqlResult<T>> {
  const res = await (t.gatewayFetch as (r: Request) => Promise<Response>)(
    new Request(t.gatewayUrl as string, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
      body: JSON.stringify({ query, variables }),
    }),
  );
  return (await res.json()) as GqlResult<T>;
}

const PREFERENCES = `
  rules { channel category enabled }
  quietHours { enabled start end }
  effectiveQuietHours { enabled start end }
  requiredCategories
  defaultTimeZone`;

describe('me { preferences } and updateMyPreferences', () => {
  it('reads and replaces the token user’s own preferences', async () => {
    const u = `g-${randomUUID()}`;
    await herald.preferences.updateTenantPreferences({
      preferences: { requiredCategories: ['security'] },
    });
    const token = issueUserToken({ master: MASTER, tenantId: TENANT, userId: u });
    const updated = await gql<{ updateMyPreferences: unknown }>(
      token,
      `mutation ($input: PreferencesInput!) { updateMyPreferences(input: $input) { ${PREFERENCES} } }`,
      {
        input: {
          rules: [{ channel: 'EMAIL', category: 'marketing', enabled: false }],
          quietHours: { enabled: true, start: '21:00', end: '07:00' },
        },
      },
    );
    expect(updated.errors).toBeUndefined();
    const expected = {
      rules: [{ channel: 'EMAIL', category: 'marketing', enabled: false }],
      quietHours: { enabled: true, start: '21:00', end: '07:00' },
      effectiveQuietHours: { enabled: true, start: '21:00', end: '07:00' },
      requiredCategories: ['security'],
      defaultTimeZone: 'UTC',
    };
    expect(updated.data?.updateMyPreferences).toEqual(expected);
    const read = await gql<{ me: { preferences: unknown } }>(
      token,
      `{ me { preferences { ${PREFERENCES} } } }`,
    );
    expect(read.data?.me.preferences).toEqual(expected);
    // Stored for that user, as the api sees it.
    const stored = await herald.preferences.getPreferences({ userId: u });
    expect(stored.preferences?.rules).toMatchObject([{ category: 'marketing', enabled: false }]);

    const bad = await gql(
      token,
      `mutation { updateMyPreferences(input: { rules: [{ enabled: false }] }) { rules { enabled } } }`,
    );
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses an API key: it has no "me"', async () => {
    const res = await gql(
      apiKey,
      `mutation { updateMyPreferences(input: { rules: [] }) { rules { enabled } } }`,
    );
    expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('deliverNow', () => {
  it('releases a scheduled notification, and a second call changes nothing', async () => {
    const sent = await herald.send({
      userId: `g-${randomUUID()}`,
      channel: Channel.EMAIL,
      to: 'a@example.com',
      content: { subject: 's', body: 'b' },
      sendAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
    });
    expect(sent.status).toBe(NotificationStatus.SCHEDULED);
    const mutation = `mutation ($id: ID!) { deliverNow(id: $id) { id status statusReason } }`;
    const first = await gql<{ deliverNow: { status: string } }>(apiKey, mutation, { id: sent.id });
    expect(first.data?.deliverNow).toEqual({ id: sent.id, status: 'PENDING', statusReason: null });
    await expect
      .poll(async () => (await herald.getNotification({ id: sent.id })).notification?.status, {
        timeout: 20_000,
        interval: 50,
      })
      .toBe(NotificationStatus.DELIVERED);
    const again = await gql<{ deliverNow: { status: string } }>(apiKey, mutation, { id: sent.id });
    expect(again.data?.deliverNow.status).toBe('DELIVERED');

    const unknown = await gql(apiKey, mutation, { id: '01890000-0000-7000-8000-000000000000' });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});
