/**
 * TemplateService, and Sends by template: versions are immutable and a notification keeps the
 * version it was rendered from; variables are checked when the Send is accepted; the recipient's
 * locale falls back from fr-CA to fr to the default; archived templates cannot be sent; writes
 * need the admin scope and templates are per tenant.
 */
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  Channel,
  NotificationStatus,
  createHeraldClient,
  type HeraldClient,
  type Notification,
  type TemplateSchema,
} from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTemplates, type TemplateFields } from '../../src/domain/templates.js';
import { createTemplateStore } from '../../src/infra/postgres/template-store.js';
import { createTestApiKey } from '../support/access.js';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { countingPool } from '../support/postgres.js';

let t: TestHerald;
let client: HeraldClient;
let sendOnly: HeraldClient;
let otherTenant: HeraldClient;

beforeAll(async () => {
  t = await startTestHerald({
    env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: 'templates-test-secret-0123456789' },
  });
  const connect = async (tenant: string, scopes: ('send' | 'read' | 'admin')[]) =>
    createHeraldClient({
      baseUrl: t.h2cUrl,
      apiKey: await createTestApiKey(t.db.pool, tenant, scopes),
    });
  client = await connect('acme', ['send', 'read', 'admin']);
  sendOnly = await connect('acme', ['send', 'read']);
  otherTenant = await connect('globex', ['send', 'read', 'admin']);
});

afterAll(async () => {
  for (const c of [client, sendOnly, otherTenant]) c?.close();
  await t?.stop();
});

const uid = () => randomUUID().slice(0, 8);
const user = () => `t-${randomUUID()}`;

type TemplateInit = MessageInitShape<typeof TemplateSchema>;

/** An order-shipped template: email in en and fr, sms and in_app in en only. */
function orderShipped(id: string, subject = 'Your order {{order_id}} shipped'): TemplateInit {
  return {
    id,
    description: 'Sent when an order leaves the warehouse',
    defaultLocale: 'en',
    variables: [
      { name: 'name', required: true },
      { name: 'order_id', required: true },
      { name: 'carrier', defaultValue: 'the post' },
    ],
    locales: {
      en: {
        email: {
          subject,
          text: 'Hi {{name}}, it comes with {{carrier}}.',
          html: '<p>Hi {{name}}, it comes with <b>{{carrier}}</b>.</p>',
        },
        sms: { text: 'Order {{order_id}} shipped' },
        inApp: {
          title: 'Shipped',
          body: 'Order {{order_id}} is on its way',
          data: { order: '{{order_id}}' },
        },
      },
      fr: {
        email: {
          subject: 'Votre commande {{order_id}} est partie',
          text: 'Bonjour {{name}}',
          html: '',
        },
        inApp: { title: 'Expédiée', body: 'Commande {{order_id}} en route', data: {} },
      },
    },
  };
}

async function delivered(id: string): Promise<Notification> {
  let n: Notification | undefined;
  await expect
    .poll(
      async () => {
        n = (await client.getNotification({ id })).notification;
        return n?.status;
      },
      { timeout: 20_000, interval: 50 },
    )
    .toBe(NotificationStatus.DELIVERED);
  return n as Notification;
}

const stored = async (userId: string) =>
  (
    await t.db.pool.query<{ id: string }>('select id from notification where user_id = $1', [
      userId,
    ])
  ).rows;

describe('TemplateService', () => {
  it('creates version 1, adds immutable versions on update, and gets the latest or any version', async () => {
    const id = `order-shipped-${uid()}`;
    const { template: v1 } = await client.templates.createTemplate({ template: orderShipped(id) });
    expect(v1).toMatchObject({ id, version: 1, latestVersion: 1, defaultLocale: 'en' });
    expect(v1?.locales.fr?.email?.subject).toBe('Votre commande {{order_id}} est partie');

    const { template: v2 } = await client.templates.updateTemplate({
      template: orderShipped(id, 'Shipped: {{order_id}}'),
      expectedVersion: 1,
    });
    expect(v2).toMatchObject({ version: 2, latestVersion: 2 });

    const latest = (await client.templates.getTemplate({ id })).template;
    expect(latest?.locales.en?.email?.subject).toBe('Shipped: {{order_id}}');
    const first = (await client.templates.getTemplate({ id, version: 1 })).template;
    expect(first).toMatchObject({ version: 1, latestVersion: 2 });
    expect(first?.locales.en?.email?.subject).toBe('Your order {{order_id}} shipped');

    const taken = await rejection(client.templates.createTemplate({ template: orderShipped(id) }));
    expect(taken.code).toBe(Code.AlreadyExists);
    const stale = await rejection(
      client.templates.updateTemplate({ template: orderShipped(id), expectedVersion: 1 }),
    );
    expect(stale.code).toBe(Code.FailedPrecondition);
    expect(stale.rawMessage).toContain('is at version 2');
    expect((await rejection(client.templates.getTemplate({ id, version: 3 }))).code).toBe(
      Code.NotFound,
    );
    expect(
      (
        await rejection(
          client.templates.updateTemplate({ template: orderShipped(`nope-${uid()}`) }),
        )
      ).code,
    ).toBe(Code.NotFound);
  });

  it('rejects a syntax error or an undeclared variable naming the exact part', async () => {
    const template = orderShipped(`bad-${uid()}`);
    template.locales = {
      ...template.locales,
      fr: { email: { subject: 'Salut {{prenom}}', text: '', html: '<p>{{name</p>' } },
    };
    const err = await rejection(client.templates.createTemplate({ template }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err)).toEqual([
      'template.locales["fr"].email.subject',
      'template.locales["fr"].email.html',
    ]);
    expect(err.rawMessage).toContain('uses {{prenom}}, which is not a declared variable');
    expect(err.rawMessage).toContain('unterminated tag "{{" at line 1, column 4');
    const { rows } = await t.db.pool.query('select 1 from template where id = $1', [template.id]);
    expect(rows).toEqual([]);
  });

  it('pages through templates by id, leaving archived ones out unless asked', async () => {
    const prefix = `list-${uid()}`;
    const ids = ['a', 'b', 'c', 'd', 'e'].map((s) => `${prefix}-${s}`);
    for (const id of ids) await client.templates.createTemplate({ template: orderShipped(id) });
    await client.templates.archiveTemplate({ id: ids[2] });

    const all = async (includeArchived: boolean) => {
      const seen: string[] = [];
      let pageToken = '';
      do {
        const page = await client.templates.listTemplates({
          pageSize: 2,
          pageToken,
          includeArchived,
        });
        expect(page.templates.length).toBeLessThanOrEqual(2);
        seen.push(...page.templates.map((x) => x.id));
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      return seen.filter((id) => id.startsWith(prefix));
    };
    expect(await all(false)).toEqual([ids[0], ids[1], ids[3], ids[4]]);
    expect(await all(true)).toEqual(ids);
    const bad = await rejection(
      client.templates.listTemplates({ pageToken: 'nope', pageSize: 501 }),
    );
    expect(violatedFields(bad).sort()).toEqual(['page_size', 'page_token']);
  });

  it('archives idempotently; an archived template stays readable but cannot be updated or sent', async () => {
    const id = `archived-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const { template: once } = await client.templates.archiveTemplate({ id });
    const { template: twice } = await client.templates.archiveTemplate({ id });
    expect(once?.archivedAt).toBeDefined();
    expect(twice?.archivedAt).toEqual(once?.archivedAt);
    expect((await client.templates.getTemplate({ id })).template?.archivedAt).toEqual(
      once?.archivedAt,
    );
    const update = await rejection(client.templates.updateTemplate({ template: orderShipped(id) }));
    expect(update.code).toBe(Code.FailedPrecondition);
    // Its id stays taken, and creating it again says so rather than pointing at UpdateTemplate.
    const again = await rejection(client.templates.createTemplate({ template: orderShipped(id) }));
    expect(again.code).toBe(Code.AlreadyExists);
    expect(again.rawMessage).toBe(
      `template "${id}" exists and is archived; its id cannot be used again`,
    );
    const u = user();
    const send = await rejection(
      client.send({
        userId: u,
        channel: Channel.SMS,
        to: '+15550001234',
        template: { id, variables: { name: 'Ada', order_id: '1' } },
      }),
    );
    expect(send.code).toBe(Code.FailedPrecondition);
    expect(send.rawMessage).toContain('is archived');
    expect(await stored(u)).toEqual([]);
    expect((await rejection(client.templates.archiveTemplate({ id: `nope-${uid()}` }))).code).toBe(
      Code.NotFound,
    );
  });

  it('previews a stored version with html escaping, locale fallback and violations, sending nothing', async () => {
    const id = `preview-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const count = async () =>
      (await t.db.pool.query<{ n: number }>('select count(*)::int as n from notification')).rows[0]
        ?.n;
    const before = await count();
    const preview = await client.templates.previewTemplate({
      id,
      variables: { name: '<Ada & "Bob">', order_id: '42' },
      locale: 'en-GB',
    });
    expect(preview.version).toBe(1);
    expect(preview.violations).toEqual([]);
    const email = preview.contents.find((c) => c.channel === Channel.EMAIL);
    expect(email?.content).toMatchObject({
      subject: 'Your order 42 shipped',
      body: 'Hi <Ada & "Bob">, it comes with the post.',
      html: '<p>Hi &lt;Ada &amp; &quot;Bob&quot;&gt;, it comes with <b>the post</b>.</p>',
    });
    expect(preview.contents.map((c) => c.channel)).toEqual([
      Channel.EMAIL,
      Channel.SMS,
      Channel.IN_APP,
    ]);

    const french = await client.templates.previewTemplate({
      id,
      variables: { order_id: '7' },
      locale: 'fr-CA',
      channel: Channel.EMAIL,
    });
    expect(french.contents).toHaveLength(1);
    expect(french.contents[0]).toMatchObject({ locale: 'fr' });
    expect(french.contents[0]?.content?.subject).toBe('Votre commande 7 est partie');
    expect(french.violations.map((v) => v.field)).toEqual(['template.variables.name']);

    const draft = await client.templates.previewTemplate({
      draft: {
        defaultLocale: 'en',
        variables: [{ name: 'x', required: true }],
        locales: { en: { sms: { text: 'x={{x}}' } } },
      },
      variables: { x: '<1>' },
    });
    expect(draft.version).toBe(0);
    expect(draft.contents[0]?.content?.body).toBe('x=<1>');
    const badDraft = await rejection(
      client.templates.previewTemplate({
        draft: { defaultLocale: 'en', locales: { en: { sms: { text: '{{y}}' } } } },
      }),
    );
    expect(violatedFields(badDraft)).toEqual(['draft.locales["en"].sms.text']);
    // A version with a draft would be ignored: refused.
    const versionedDraft = await rejection(
      client.templates.previewTemplate({
        draft: { defaultLocale: 'en', locales: { en: { sms: { text: 'hi' } } } },
        version: 2,
      }),
    );
    expect(versionedDraft.code).toBe(Code.InvalidArgument);
    expect(violatedFields(versionedDraft)).toEqual(['version']);
    // An archived template still previews, and says that Send refuses it.
    await client.templates.archiveTemplate({ id });
    const archived = await client.templates.previewTemplate({
      id,
      variables: { name: 'Ada', order_id: '1' },
    });
    expect(archived.contents.length).toBeGreaterThan(0);
    expect(archived.violations).toEqual([
      expect.objectContaining({
        field: 'template.id',
        description: `template "${id}" is archived and can no longer be sent`,
      }),
    ]);
    expect(await count()).toBe(before);
  });

  it('needs the admin scope to write and keeps each tenant’s templates to itself', async () => {
    const id = `scoped-${uid()}`;
    const denied = await rejection(
      sendOnly.templates.createTemplate({ template: orderShipped(id) }),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    await client.templates.createTemplate({ template: orderShipped(id) });
    expect((await sendOnly.templates.getTemplate({ id })).template?.id).toBe(id);
    expect((await rejection(otherTenant.templates.getTemplate({ id }))).code).toBe(Code.NotFound);
    // Another tenant may use the same id for a template of its own.
    await otherTenant.templates.createTemplate({ template: orderShipped(id) });
  });
});

describe('Send by template', () => {
  it('delivers the rendered content and pins the version; a later version leaves it unchanged', async () => {
    const id = `pinned-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const u = user();
    const first = await client.send({
      userId: u,
      channel: Channel.EMAIL,
      to: 'ada@example.com',
      template: { id, variables: { name: 'Ada <3', order_id: 'A-1' } },
    });
    const n1 = await delivered(first.id);
    expect(n1.template).toMatchObject({ id, version: 1, locale: 'en' });
    expect(n1.content).toMatchObject({
      subject: 'Your order A-1 shipped',
      body: 'Hi Ada <3, it comes with the post.',
      html: '<p>Hi Ada &lt;3, it comes with <b>the post</b>.</p>',
    });

    await client.templates.updateTemplate({
      template: orderShipped(id, 'New subject {{order_id}}'),
    });
    const second = await client.send({
      userId: u,
      channel: Channel.EMAIL,
      to: 'ada@example.com',
      template: { id, variables: { name: 'Ada', order_id: 'A-2' } },
    });
    const n2 = await delivered(second.id);
    expect(n2.template).toMatchObject({ id, version: 2 });
    expect(n2.content?.subject).toBe('New subject A-2');

    const again = (await client.getNotification({ id: first.id })).notification;
    expect(again?.template).toMatchObject({ id, version: 1, locale: 'en' });
    expect(again?.content?.subject).toBe('Your order A-1 shipped');

    // An explicit old version still renders as it was.
    const pinnedOld = await client.send({
      userId: u,
      channel: Channel.EMAIL,
      to: 'ada@example.com',
      template: { id, version: 1, variables: { name: 'Ada', order_id: 'A-3' } },
    });
    expect((await delivered(pinnedOld.id)).content?.subject).toBe('Your order A-3 shipped');
  });

  it('rejects a missing variable at accept, naming it, and stores nothing', async () => {
    const id = `missing-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const u = user();
    const err = await rejection(
      client.send({
        userId: u,
        channel: Channel.SMS,
        to: '+15550001234',
        template: { id, variables: { name: 'Ada' } },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err)).toEqual(['template.variables.order_id']);
    expect(await stored(u)).toEqual([]);
  });

  it('falls back from fr-CA to fr, and to the default locale for other locales or channels', async () => {
    const id = `locales-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const inApp = async (locale: string | null, channel = Channel.IN_APP) => {
      const u = user();
      if (locale !== null) {
        await client.recipients.upsertRecipient({
          recipient: { userId: u, locale, phone: '+15550001234' },
        });
      }
      const r = await client.send({
        userId: u,
        channel,
        ...(channel === Channel.SMS && locale === null ? { to: '+15550001234' } : {}),
        template: { id, variables: { name: 'Ada', order_id: '9' } },
      });
      return delivered(r.id);
    };
    const canadian = await inApp('fr-CA');
    expect(canadian.template?.locale).toBe('fr');
    expect(canadian.content).toMatchObject({ title: 'Expédiée', body: 'Commande 9 en route' });
    expect((await inApp('de-DE')).template?.locale).toBe('en');
    const unknownRecipient = await inApp(null);
    expect(unknownRecipient.template?.locale).toBe('en');
    expect(unknownRecipient.content?.data).toEqual({ order: '9' });
    // fr has no sms parts: the default locale's are used.
    const sms = await inApp('fr-CA', Channel.SMS);
    expect(sms.template?.locale).toBe('en');
    expect(sms.content?.body).toBe('Order 9 shipped');
  });

  it('answers NOT_FOUND for an unknown template or version, and INVALID_ARGUMENT for a channel it lacks', async () => {
    const id = `known-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const u = user();
    const send = (template: { id: string; version?: number }, channel = Channel.SMS) =>
      rejection(
        client.send({
          userId: u,
          channel,
          to: channel === Channel.PUSH ? 'device' : '+15550001234',
          template: { ...template, variables: { name: 'A', order_id: '1' } },
        }),
      );
    expect((await send({ id: `unknown-${uid()}` })).code).toBe(Code.NotFound);
    expect((await send({ id, version: 5 })).code).toBe(Code.NotFound);
    const lacking = await send({ id }, Channel.PUSH);
    expect(lacking.code).toBe(Code.InvalidArgument);
    expect(violatedFields(lacking)).toEqual(['template.id']);
    expect(lacking.rawMessage).toContain('has no push parts');
    expect(await stored(u)).toEqual([]);
  });

  it('needs exactly one of content and template, and checks the reference', async () => {
    const u = user();
    const both = await rejection(
      client.send({
        userId: u,
        channel: Channel.SMS,
        to: '+15550001234',
        content: { body: 'b' },
        template: { id: 'x' },
      }),
    );
    expect(violatedFields(both)).toEqual(['template']);
    const neither = await rejection(
      client.send({ userId: u, channel: Channel.SMS, to: '+15550001234' }),
    );
    expect(violatedFields(neither)).toEqual(['content']);
    const bad = await rejection(
      client.send({
        userId: u,
        channel: Channel.SMS,
        to: '+15550001234',
        template: { id: 'Not An Id', version: -1, variables: { '': 'x' } },
      }),
    );
    expect(violatedFields(bad)).toEqual([
      'template.id',
      'template.version',
      'template.variables[""]',
    ]);
  });

  it('replays a template Send with the same idempotency key, even after the template changed', async () => {
    const id = `idem-${uid()}`;
    await client.templates.createTemplate({ template: orderShipped(id) });
    const request = {
      userId: user(),
      channel: Channel.SMS,
      to: '+15550001234',
      idempotencyKey: `k-${uid()}`,
      template: { id, variables: { name: 'Ada', order_id: '5' } },
    };
    const first = await client.send(request);
    await client.templates.updateTemplate({ template: orderShipped(id) });
    const again = await client.send(request);
    expect(again).toMatchObject({ id: first.id, replayed: true });
    const changed = await rejection(
      client.send({
        ...request,
        template: { ...request.template, variables: { name: 'Bob', order_id: '5' } },
      }),
    );
    expect(changed.code).toBe(Code.AlreadyExists);
  });
});

describe('template store', () => {
  const fields = (id: string, text = 'Hi {{name}}'): TemplateFields => ({
    id,
    description: '',
    defaultLocale: 'en',
    variables: [{ name: 'name', required: true, defaultValue: '', description: '' }],
    locales: { en: { sms: { text } } },
  });

  it('adds no version when two pushes of the same fields race to create the template', async () => {
    const tenant = `push-${uid()}`;
    const store = createTemplateStore(t.db.pool);
    // Both pushes read "no such template" before either creates it.
    let arrived = 0;
    let bothArrived: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (bothArrived = resolve));
    let firstReads = 2;
    const templates = createTemplates({
      ...store,
      async get(tenantId, id, version) {
        const found = await store.get(tenantId, id, version);
        if (firstReads > 0) {
          firstReads -= 1;
          if (++arrived === 2) bothArrived();
          await gate;
        }
        return found;
      },
    });
    const f = fields(`race-${uid()}`);
    const outcomes = await Promise.all([templates.push(tenant, f), templates.push(tenant, f)]);
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['created', 'unchanged']);
    expect(outcomes.map((o) => o.template.latestVersion)).toEqual([1, 1]);
    expect((await store.get(tenant, f.id, null))?.version).toBe(1);
  });

  it('looks up concurrent Sends in one statement, each getting its own answer', async () => {
    const tenant = `lookup-${uid()}`;
    const { pool: counting, statements } = countingPool(t.db.pool);
    const store = createTemplateStore(counting);
    const id = `batched-${uid()}`;
    await store.create(tenant, fields(id, 'v1 {{name}}'));
    const added = await store.addVersion(tenant, fields(id, 'v2 {{name}}'), 1);
    expect(added.ok).toBe(true);
    statements.count = 0;

    // A SendBatch's worth on one template, plus other keys mixed in.
    const same = Array.from({ length: 100 }, () => store.forSend(tenant, id, null, []));
    const [pinned, cached, missingVersion, unknown, otherTenant] = await Promise.all([
      store.forSend(tenant, id, 1, []),
      store.forSend(tenant, id, null, [2]),
      store.forSend(tenant, id, 7, []),
      store.forSend(tenant, 'no-such-template', null, []),
      store.forSend(`other-${tenant}`, id, null, []),
    ]);
    const results = await Promise.all(same);
    // Every call arrived in the same event-loop turn: they all go in one statement.
    expect(statements.count).toBe(1);
    for (const r of results) {
      expect(r).toMatchObject({ version: 2, archived: false, versionExists: true });
      expect(r?.fields?.locales).toEqual({ en: { sms: { text: 'v2 {{name}}' } } });
    }
    expect(pinned?.fields?.locales).toEqual({ en: { sms: { text: 'v1 {{name}}' } } });
    expect(cached).toEqual({ version: 2, archived: false, versionExists: true, fields: null });
    expect(missingVersion).toMatchObject({ version: 7, versionExists: false, fields: null });
    expect(unknown).toBeNull();
    expect(otherTenant).toBeNull();
  });
});
