/**
 * Templates through the GraphQL gateway: `template` and `templates` queries over TemplateService,
 * and sendNotification with a `template` input, whose notification shows the pinned version.
 */
import { randomUUID } from 'node:crypto';
import { createHeraldClient, NotificationStatus, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let t: TestHerald;
let client: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald({ gateway: true });
  client = createHeraldClient({ baseUrl: t.h2cUrl });
});

afterAll(async () => {
  client?.close();
  await t?.stop();
});

interface GqlResult<D> {
  data?: D | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

async function gql<D>(query: string, variables: Record<string, unknown> = {}) {
  const fetchHandler = t.gatewayFetch;
  if (fetchHandler === null || t.gatewayUrl === null) throw new Error('no gateway');
  const res = await fetchHandler(
    new Request(t.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, variables }),
    }),
  );
  return (await res.json()) as GqlResult<D>;
}

async function create(id: string) {
  await client.templates.createTemplate({
    template: {
      id,
      defaultLocale: 'en',
      variables: [{ name: 'name', required: true }],
      locales: {
        en: { inApp: { title: 'Hello {{name}}', body: 'Welcome, {{name}}', data: {} } },
        fr: { inApp: { title: 'Bonjour {{name}}', body: '', data: {} } },
      },
    },
  });
}

describe('templates through the gateway', () => {
  it('reads a template and its versions, and pages through templates', async () => {
    const prefix = `gql-${randomUUID().slice(0, 8)}`;
    await create(`${prefix}-a`);
    await create(`${prefix}-b`);
    const one = await gql<{
      template: {
        id: string;
        version: number;
        locales: { locale: string; inApp: { title: string } }[];
      };
      missing: unknown;
    }>(
      `query($id: ID!) {
        template(id: $id) { id version locales { locale inApp { title } } }
        missing: template(id: "no-such-template") { id }
      }`,
      { id: `${prefix}-a` },
    );
    expect(one.errors).toBeUndefined();
    expect(one.data?.template).toEqual({
      id: `${prefix}-a`,
      version: 1,
      locales: [
        { locale: 'en', inApp: { title: 'Hello {{name}}' } },
        { locale: 'fr', inApp: { title: 'Bonjour {{name}}' } },
      ],
    });
    expect(one.data?.missing).toBeNull();

    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: GqlResult<{
        templates: {
          edges: { node: { id: string } }[];
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      }> = await gql(
        `query($after: String) {
          templates(first: 1, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
        }`,
        { after },
      );
      expect(page.errors).toBeUndefined();
      seen.push(...(page.data?.templates.edges.map((e) => e.node.id) ?? []));
      if (!page.data?.templates.pageInfo.hasNextPage) break;
      after = page.data.templates.pageInfo.endCursor;
    }
    expect(seen.filter((id) => id.startsWith(prefix))).toEqual([`${prefix}-a`, `${prefix}-b`]);
  });

  it('sends by template, showing the rendered content and the pinned version', async () => {
    const id = `gql-send-${randomUUID().slice(0, 8)}`;
    await create(id);
    const userId = `g-${randomUUID()}`;
    await client.recipients.upsertRecipient({ recipient: { userId, locale: 'fr-CA' } });
    const sent = await gql<{
      sendNotification: {
        notification: {
          id: string;
          content: { title: string | null };
          template: { id: string; version: number; locale: string };
        };
      };
    }>(
      `mutation($input: SendNotificationInput!) {
        sendNotification(input: $input) {
          notification { id content { title } template { id version locale } }
        }
      }`,
      {
        input: {
          userId,
          channel: 'IN_APP',
          template: { id, variables: [{ key: 'name', value: 'Ada' }] },
        },
      },
    );
    expect(sent.errors).toBeUndefined();
    expect(sent.data?.sendNotification.notification).toMatchObject({
      content: { title: 'Bonjour Ada' },
      template: { id, version: 1, locale: 'fr' },
    });
    const nid = sent.data?.sendNotification.notification.id ?? '';
    await expect
      .poll(async () => (await client.getNotification({ id: nid })).notification?.status, {
        timeout: 20_000,
        interval: 50,
      })
      .toBe(NotificationStatus.DELIVERED);

    const missing = await gql(
      `mutation($input: SendNotificationInput!) { sendNotification(input: $input) { replayed } }`,
      { input: { userId, channel: 'IN_APP', template: { id } } },
    );
    expect(missing.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      fieldViolations: [{ field: 'template.variables.name' }],
    });
  });
});
