/**
 * The GraphQL gateway (DESIGN §8) against a real api: queries and mutations through yoga's fetch
 * handler and over the gateway's port, Relay paging, the caller's own view (`me`), errors mapped
 * from the api's codes (and unexpected ones masked), RELIABILITY R14 (depth, aliases, batching,
 * introspection and GraphiQL in production, field suggestions; each rejected before execution)
 * and the per-caller subscription cap.
 */
import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { NotificationService } from '@herald/client';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Scope } from '../../src/domain/access.js';
import type { Logger } from '../../src/domain/ports.js';
import { createGateway, type Gateway } from '../../src/graphql/gateway.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { createCleanups } from '../support/cleanups.js';
import { startH2cServer } from '../support/http-server.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const MASTER = 'gateway-test-master-secret-0123456789abcdef';
/** SMS sends one user may make per window on `open`: low, so a test can run into the limit. */
const SMS_LIMIT = 2;
const SMS_WINDOW_MS = 60_000;
/** Concurrent subscriptions one credential may hold on `secured`'s gateway. */
const MAX_SUBSCRIPTIONS = 2;

/** Authentication off: every caller is the test tenant. */
let open: TestHerald;
/** Authentication required: API keys and user tokens. */
let secured: TestHerald;
const keys: Record<'a' | 'aRead' | 'b', string> = { a: '', aRead: '', b: '' };
const cleanups = createCleanups();

beforeAll(async () => {
  [open, secured] = await Promise.all([
    startTestHerald({
      gateway: true,
      env: {
        HERALD_RATE_LIMITS: JSON.stringify({
          default: { limit: 100_000, windowMs: SMS_WINDOW_MS },
          channels: { sms: { limit: SMS_LIMIT, windowMs: SMS_WINDOW_MS } },
        }),
      },
    }),
    startTestHerald({
      gateway: true,
      env: {
        HERALD_AUTH: 'required',
        HERALD_TOKEN_SECRET: MASTER,
        HERALD_GATEWAY_MAX_SUBSCRIPTIONS: String(MAX_SUBSCRIPTIONS),
      },
    }),
  ]);
  keys.a = await makeKey('tenant-a', ['send', 'read', 'admin']);
  keys.aRead = await makeKey('tenant-a', ['read']);
  keys.b = await makeKey('tenant-b', ['send', 'read', 'admin']);
});

afterEach(() => cleanups.runAll());

afterAll(async () => {
  await Promise.all([open?.stop(), secured?.stop()]);
});

const makeKey = (tenant: string, scopes: Scope[]) =>
  createTestApiKey(secured.db.pool, tenant, scopes);

const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });
const userToken = (userId: string, tenantId = 'tenant-a') =>
  issueUserToken({ master: MASTER, tenantId, userId, ttlSeconds: 600 });

// ---------------------------------------------------------------------------------------------
// GraphQL over HTTP

/** yoga's fetch handler (no port) or a real request to the gateway's port. */
type Via = 'yoga.fetch' | 'port';
const VIAS: readonly Via[] = ['yoga.fetch', 'port'];

interface FieldViolation {
  field: string;
  description: string;
}

interface GqlError {
  message: string;
  path?: (string | number)[];
  extensions?: {
    code?: string;
    fieldViolations?: FieldViolation[];
    retryAfterMs?: number;
    [key: string]: unknown;
  };
}

interface GqlResult<D> {
  data?: D | null;
  errors?: GqlError[];
}

interface GqlRequest {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

/** The gateway's answer: its HTTP status and the parsed body. */
interface GqlResponse<D> {
  status: number;
  body: GqlResult<D>;
}

/** POSTs `body` (one operation, or a batch) as JSON to the gateway `target`. */
async function post(
  target: { fetch: (request: Request) => Promise<Response>; url: string },
  via: Via,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit = {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...headers,
    },
    body: JSON.stringify(body),
  };
  return via === 'port' ? fetch(target.url, init) : target.fetch(new Request(target.url, init));
}

function gatewayOf(h: TestHerald) {
  const fetchHandler = h.gatewayFetch;
  const url = h.gatewayUrl;
  if (fetchHandler === null || url === null) throw new Error('started without the gateway');
  return { fetch: fetchHandler, url };
}

/** One GraphQL request to `h`'s gateway. */
async function gql<D>(
  h: TestHerald,
  via: Via,
  request: GqlRequest,
  headers: Record<string, string> = {},
): Promise<GqlResponse<D>> {
  const res = await post(gatewayOf(h), via, request, headers);
  return { status: res.status, body: (await res.json()) as GqlResult<D> };
}

/** The data of a request that must succeed without errors. */
async function ok<D>(
  h: TestHerald,
  via: Via,
  request: GqlRequest,
  headers: Record<string, string> = {},
): Promise<D> {
  const { body } = await gql<D>(h, via, request, headers);
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  if (body.data === undefined || body.data === null) throw new Error('no data');
  return body.data;
}

/** The only error of a request that must fail. */
async function failure(
  h: TestHerald,
  via: Via,
  request: GqlRequest,
  headers: Record<string, string> = {},
): Promise<GqlError> {
  const { body } = await gql<unknown>(h, via, request, headers);
  expect(body.errors, JSON.stringify(body)).toHaveLength(1);
  return (body.errors ?? [])[0] as GqlError;
}

// ---------------------------------------------------------------------------------------------
// Operations

interface GNotification {
  id: string;
  userId: string;
  channel: string;
  status: string;
  createdAt: string;
  sendAt: string | null;
  content: { subject: string | null; body: string | null };
  events: { status: string; version: number }[];
}

const NOTIFICATION_FIELDS = `
  id userId channel status createdAt sendAt
  content { subject body }
  events { status version }
`;

const SEND = `mutation Send($input: SendNotificationInput!) {
  sendNotification(input: $input) { replayed notification { ${NOTIFICATION_FIELDS} } }
}`;

interface SendData {
  sendNotification: { replayed: boolean; notification: GNotification };
}

const GET = `query Get($id: ID!) { notification(id: $id) { ${NOTIFICATION_FIELDS} } }`;

interface GetData {
  notification: GNotification | null;
}

const LIST = `query List($filter: NotificationFilter, $first: Int, $after: String) {
  notifications(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id userId channel status createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface Connection {
  edges: {
    cursor: string;
    node: Pick<GNotification, 'id' | 'userId' | 'channel' | 'status' | 'createdAt'>;
  }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

interface ListData {
  notifications: Connection;
}

const CANCEL = `mutation Cancel($id: ID!) { cancelNotification(id: $id) { id status } }`;

const ME = `query Me($first: Int) {
  me {
    unreadCount
    notifications(first: $first) { edges { node { id userId channel status } } pageInfo { hasNextPage } }
  }
}`;

interface MeData {
  me: { unreadCount: number; notifications: Connection };
}

const emailInput = (userId: string, extra: Record<string, unknown> = {}) => ({
  userId,
  channel: 'EMAIL',
  to: 'someone@example.com',
  content: { subject: 'Hello', body: 'A body' },
  ...extra,
});

const smsInput = (userId: string) => ({
  userId,
  channel: 'SMS',
  to: '+15550001111',
  content: { body: 'A text' },
});

const inAppInput = (userId: string) => ({
  userId,
  channel: 'IN_APP',
  content: { title: 'In the app', body: 'Look' },
});

/** A day ahead: the notification stays SCHEDULED for the whole test. */
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString();

async function sendOk(
  h: TestHerald,
  via: Via,
  input: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  return (await ok<SendData>(h, via, { query: SEND, variables: { input } }, headers))
    .sendNotification;
}

/** Notifications the api stored for `userId`, straight from the database. */
async function storedCount(h: TestHerald, userId: string): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: string }>(
    'select count(*) as n from notification where user_id = $1',
    [userId],
  );
  return Number(rows[0]?.n);
}

/** Every page of `filter` with `first` per page, following endCursor. */
async function allPages(
  h: TestHerald,
  via: Via,
  filter: Record<string, unknown>,
  first: number,
): Promise<Connection[]> {
  const pages: Connection[] = [];
  let after: string | null = null;
  for (;;) {
    const { notifications }: ListData = await ok<ListData>(h, via, {
      query: LIST,
      variables: { filter, first, after },
    });
    pages.push(notifications);
    if (!notifications.pageInfo.hasNextPage) return pages;
    after = notifications.pageInfo.endCursor;
    if (pages.length > 100) throw new Error('paging does not end');
  }
}

const newestFirst = (a: { createdAt: string; id: string }, b: { createdAt: string; id: string }) =>
  b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id);

describe.each(VIAS)('queries and mutations through %s', (via) => {
  it('returns the sent notification with its events, and replays it on an idempotent retry', async () => {
    const user = `send-${randomUUID()}`;
    const input = emailInput(user, { idempotencyKey: `k-${randomUUID()}` });
    const first = await sendOk(open, via, input);
    expect(first.replayed).toBe(false);
    expect(first.notification).toMatchObject({
      userId: user,
      channel: 'EMAIL',
      content: { subject: 'Hello', body: 'A body' },
    });
    expect(first.notification.events.length).toBeGreaterThanOrEqual(1);
    expect(first.notification.events[0]).toMatchObject({ status: 'PENDING', version: 1 });

    const again = await sendOk(open, via, input);
    expect(again.replayed).toBe(true);
    expect(again.notification.id).toBe(first.notification.id);
    expect(await storedCount(open, user)).toBe(1);
  });

  it('returns a notification by id, and null for an unknown one', async () => {
    const { notification } = await sendOk(open, via, emailInput(`get-${randomUUID()}`));
    const got = await ok<GetData>(open, via, { query: GET, variables: { id: notification.id } });
    expect(got.notification?.id).toBe(notification.id);
    expect(got.notification?.events.map((e) => e.version)[0]).toBe(1);

    const unknown = await ok<GetData>(open, via, {
      query: GET,
      variables: { id: '01890000-0000-7000-8000-000000000000' },
    });
    expect(unknown.notification).toBeNull();
  });

  it('pages through all of a user’s notifications newest first, each exactly once', async () => {
    const user = `pages-${randomUUID()}`;
    const sent: string[] = [];
    for (let i = 0; i < 7; i++) {
      sent.push((await sendOk(open, via, emailInput(user))).notification.id);
    }
    const pages = await allPages(open, via, { userId: user }, 3);
    expect(pages.map((p) => p.edges.length)).toEqual([3, 3, 1]);
    expect(pages.map((p) => p.pageInfo.hasNextPage)).toEqual([true, true, false]);
    for (const p of pages) expect(p.pageInfo.endCursor).toBe(p.edges.at(-1)?.cursor);

    const nodes = pages.flatMap((p) => p.edges.map((e) => e.node));
    expect(nodes.map((n) => n.id).sort()).toEqual([...sent].sort());
    expect(nodes).toEqual([...nodes].sort(newestFirst));
    expect(new Set(nodes.map((n) => n.userId))).toEqual(new Set([user]));

    // One page of all of them says there is nothing more.
    const whole = await ok<ListData>(open, via, {
      query: LIST,
      variables: { filter: { userId: user }, first: 50 },
    });
    expect(whole.notifications.edges.map((e) => e.node.id)).toEqual(nodes.map((n) => n.id));
    expect(whole.notifications.pageInfo.hasNextPage).toBe(false);
  });

  it('filters by status and by channel', async () => {
    const user = `filter-${randomUUID()}`;
    const scheduled = await sendOk(open, via, emailInput(user, { sendAt: tomorrow() }));
    expect(scheduled.notification.status).toBe('SCHEDULED');
    const now = await sendOk(open, via, emailInput(user));
    const sms = await sendOk(open, via, smsInput(user));

    const ids = async (filter: Record<string, unknown>) =>
      (
        await ok<ListData>(open, via, { query: LIST, variables: { filter, first: 50 } })
      ).notifications.edges.map((e) => e.node.id);

    expect(await ids({ userId: user, statuses: ['SCHEDULED'] })).toEqual([
      scheduled.notification.id,
    ]);
    expect(await ids({ userId: user, channels: ['SMS'] })).toEqual([sms.notification.id]);
    expect((await ids({ userId: user, channels: ['EMAIL'] })).sort()).toEqual(
      [scheduled.notification.id, now.notification.id].sort(),
    );
    expect(await ids({ userId: user, channels: ['SMS'], statuses: ['SCHEDULED'] })).toEqual([]);
  });

  it('cancels a scheduled notification, idempotently', async () => {
    const { notification } = await sendOk(
      open,
      via,
      emailInput(`cancel-${randomUUID()}`, { sendAt: tomorrow() }),
    );
    type CancelData = { cancelNotification: { id: string; status: string } };
    const cancelled = await ok<CancelData>(open, via, {
      query: CANCEL,
      variables: { id: notification.id },
    });
    expect(cancelled.cancelNotification).toEqual({ id: notification.id, status: 'CANCELLED' });
    const again = await ok<CancelData>(open, via, {
      query: CANCEL,
      variables: { id: notification.id },
    });
    expect(again.cancelNotification.status).toBe('CANCELLED');
    const got = await ok<GetData>(open, via, { query: GET, variables: { id: notification.id } });
    expect(got.notification?.events.map((e) => e.status)).toEqual(['SCHEDULED', 'CANCELLED']);
  });
});

describe.each(VIAS)('the caller’s own view through %s', (via) => {
  it('shows a user token only the user’s own notifications, and counts the delivered in-app ones', async () => {
    const alice = `alice-${randomUUID()}`;
    const service = bearer(keys.a);
    const mine = [
      await sendOk(secured, via, inAppInput(alice), service),
      await sendOk(secured, via, inAppInput(alice), service),
      await sendOk(secured, via, emailInput(alice), service),
    ].map((s) => s.notification.id);
    await sendOk(secured, via, inAppInput(`bob-${randomUUID()}`), service);

    const asAlice = bearer(userToken(alice));
    await expect
      .poll(
        async () =>
          (await ok<MeData>(secured, via, { query: ME, variables: { first: 50 } }, asAlice)).me
            .unreadCount,
      )
      .toBe(2);
    const { me } = await ok<MeData>(secured, via, { query: ME, variables: { first: 50 } }, asAlice);
    expect(me.notifications.edges.map((e) => e.node.id).sort()).toEqual([...mine].sort());
    expect(new Set(me.notifications.edges.map((e) => e.node.userId))).toEqual(new Set([alice]));
  });

  it('refuses `me` to an API key as FORBIDDEN', async () => {
    const err = await failure(secured, via, { query: ME }, bearer(keys.a));
    expect(err.extensions?.code).toBe('FORBIDDEN');
    expect(err.path).toEqual(['me']);
  });

  it('returns null for another tenant’s notification', async () => {
    const { notification } = await sendOk(
      secured,
      via,
      emailInput(`tenant-a-${randomUUID()}`),
      bearer(keys.a),
    );
    const asB = await ok<GetData>(
      secured,
      via,
      { query: GET, variables: { id: notification.id } },
      bearer(keys.b),
    );
    expect(asB.notification).toBeNull();
    const asA = await ok<GetData>(
      secured,
      via,
      { query: GET, variables: { id: notification.id } },
      bearer(keys.a),
    );
    expect(asA.notification?.id).toBe(notification.id);
  });
});

// ---------------------------------------------------------------------------------------------
// Errors

describe.each(VIAS)('errors through %s', (via) => {
  it('names every invalid field as BAD_USER_INPUT, and stores nothing', async () => {
    const user = `invalid-${randomUUID()}`;
    const input = {
      userId: '',
      channel: 'SMS',
      to: 'not-a-phone',
      content: { body: '' },
      category: 'Not A Category',
    };
    const { body } = await gql<SendData>(open, via, { query: SEND, variables: { input } });
    expect(body.data).toBeNull();
    expect(body.errors).toHaveLength(1);
    const err = (body.errors ?? [])[0];
    expect(err?.path).toEqual(['sendNotification']);
    expect(err?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(err?.extensions?.fieldViolations?.map((v) => v.field).sort()).toEqual(
      ['category', 'content.body', 'to', 'user_id'].sort(),
    );
    for (const v of err?.extensions?.fieldViolations ?? []) expect(v.description).not.toBe('');

    // A bad date the gateway itself parses is named the same way.
    const date = await failure(open, via, {
      query: SEND,
      variables: { input: emailInput(user, { sendAt: 'next tuesday' }) },
    });
    expect(date.extensions?.code).toBe('BAD_USER_INPUT');
    expect(date.extensions?.fieldViolations?.map((v) => v.field)).toEqual(['send_at']);
    // DateTime is RFC 3339 with the zone (what the api's JSON takes): nothing that Date() would
    // also read (a year alone, a number, a date without a time or a zone, Feb 30) is taken.
    for (const sendAt of [
      '1',
      true,
      [2026],
      1795400000000,
      '2026-12-01',
      '2026-12-01T10:00:00',
      'Dec 25 2026 10:00',
      '2027-02-30T10:00:00Z',
    ]) {
      const bad = await failure(open, via, {
        query: SEND,
        variables: { input: emailInput(user, { sendAt }) },
      });
      expect(
        bad.extensions?.fieldViolations?.map((v) => v.field),
        String(sendAt),
      ).toEqual(['send_at']);
    }
    expect(await storedCount(open, user)).toBe(0);
  });

  it('names `first` when it is outside 1 to 500, instead of reading 0 as the default', async () => {
    for (const first of [0, -1, 501]) {
      for (const query of [
        LIST,
        'query T($first: Int) { templates(first: $first) { edges { node { id } } } }',
      ]) {
        const err = await failure(open, via, { query, variables: { first } });
        expect(err.extensions?.code, `${first}`).toBe('BAD_USER_INPUT');
        expect(err.extensions?.fieldViolations?.map((v) => v.field)).toEqual(['first']);
        expect(err.message).toBe('first: must be 1 to 500; null or omitted: 50');
      }
    }
    const one = await ok<ListData>(open, via, { query: LIST, variables: { first: 1 } });
    expect(one.notifications.edges.length).toBeLessThanOrEqual(1);
  });

  it('answers NOT_FOUND for cancelling an unknown notification', async () => {
    const err = await failure(open, via, {
      query: CANCEL,
      variables: { id: '01890000-0000-7000-8000-000000000000' },
    });
    expect(err.extensions?.code).toBe('NOT_FOUND');
    expect(err.path).toEqual(['cancelNotification']);
  });

  it('answers UNAUTHENTICATED without credentials or with bad ones', async () => {
    const user = `unauthenticated-${randomUUID()}`;
    const forged = `${userToken(user).slice(0, -4)}AAAA`;
    for (const headers of [
      {},
      bearer('hk_short_x'),
      bearer(forged),
      { authorization: 'Basic Zm9vOmJhcg==' },
    ]) {
      const list = await failure(secured, via, { query: LIST, variables: { first: 1 } }, headers);
      expect(list.extensions?.code, JSON.stringify(headers)).toBe('UNAUTHENTICATED');
      const sent = await failure(
        secured,
        via,
        { query: SEND, variables: { input: emailInput(user) } },
        headers,
      );
      expect(sent.extensions?.code, JSON.stringify(headers)).toBe('UNAUTHENTICATED');
    }
    expect(await storedCount(secured, user)).toBe(0);
  });

  it('answers FORBIDDEN for a key without the scope, and stores nothing', async () => {
    const user = `forbidden-${randomUUID()}`;
    const err = await failure(
      secured,
      via,
      { query: SEND, variables: { input: emailInput(user) } },
      bearer(keys.aRead),
    );
    expect(err.extensions?.code).toBe('FORBIDDEN');
    expect(err.message).toBe('Send needs the send scope');
    expect(await storedCount(secured, user)).toBe(0);
  });

  it('answers RATE_LIMITED with retryAfterMs over the per-user limit', async () => {
    const user = `limited-${randomUUID()}`;
    for (let i = 0; i < SMS_LIMIT; i++) await sendOk(open, via, smsInput(user));
    const err = await failure(open, via, { query: SEND, variables: { input: smsInput(user) } });
    expect(err.extensions?.code).toBe('RATE_LIMITED');
    expect(err.extensions?.retryAfterMs).toBeGreaterThan(0);
    expect(err.extensions?.retryAfterMs).toBeLessThanOrEqual(SMS_WINDOW_MS);
    expect(await storedCount(open, user)).toBe(SMS_LIMIT);
  });

  it('answers CONFLICT for an idempotency key reused with another body', async () => {
    const user = `conflict-${randomUUID()}`;
    const idempotencyKey = `k-${randomUUID()}`;
    await sendOk(open, via, emailInput(user, { idempotencyKey }));
    const err = await failure(open, via, {
      query: SEND,
      variables: {
        input: emailInput(user, { idempotencyKey, content: { subject: 'Other', body: 'Other' } }),
      },
    });
    expect(err.extensions?.code).toBe('CONFLICT');
    expect(await storedCount(open, user)).toBe(1);
  });
});

/** A logger that keeps what it is given. */
function recordingLogger(): Logger & { entries: { level: string; obj: object; msg?: string }[] } {
  const entries: { level: string; obj: object; msg?: string }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, obj, msg });
    };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** An api at the wire that fails in ways the gateway has no mapping for. */
const INTERNALS =
  'relation "notification" does not exist (pool 10.1.2.3:5432, /srv/herald/store.ts)';
const GHOST = '01890000-0000-7000-8000-00000000dead';
const brokenApi: Partial<ServiceImpl<typeof NotificationService>> = {
  getNotification(req) {
    if (req.id === GHOST) return {};
    throw new ConnectError(INTERNALS, Code.Internal);
  },
  listNotifications() {
    throw new ConnectError(INTERNALS, Code.DataLoss);
  },
  send() {
    return { id: GHOST };
  },
};

describe('unexpected errors', () => {
  it('are masked as "Unexpected error." without internals, and logged with their cause', async () => {
    const api = await startH2cServer(
      connectNodeAdapter({ routes: (r) => r.service(NotificationService, brokenApi) }),
    );
    cleanups.add(() => api.close());
    const logger = recordingLogger();
    const gateway = createGateway({
      apiUrl: api.url,
      logger,
      production: false,
      maxSubscriptionsPerCaller: 5,
      maxBatch: 10,
    });
    cleanups.add(() => gateway.close());
    const target = { fetch: gateway.fetch, url: 'http://gateway.test/graphql' };
    // yoga puts the original error (message, stack) into the answer when NODE_ENV says
    // development: the gateway must not.
    const nodeEnv = process.env.NODE_ENV;
    process.env.NODE_ENV = 'development';
    cleanups.add(() => {
      process.env.NODE_ENV = nodeEnv;
    });

    for (const request of [
      { query: GET, variables: { id: randomUUID() } },
      { query: LIST, variables: { first: 1 } },
      // The api accepts the send, then has no such notification: an invariant of the gateway.
      { query: SEND, variables: { input: emailInput('u') } },
    ]) {
      const res = await post(target, 'yoga.fetch', request);
      const text = await res.text();
      expect(text).not.toMatch(/relation|10\.1\.2\.3|srv\/herald|vanished|stack|originalError/i);
      const body = JSON.parse(text) as GqlResult<unknown>;
      expect(body.errors?.map((e) => e.message)).toEqual(['Unexpected error.']);
      expect(body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    }
    const causes = logger.entries
      .filter((e) => e.level === 'error')
      .map((e) => (e.obj as { err?: unknown }).err)
      .map((err) => (err instanceof Error ? err.message : String(err)));
    expect(causes).toEqual([
      expect.stringContaining('relation "notification" does not exist'),
      expect.stringContaining('relation "notification" does not exist'),
      `notification ${GHOST} vanished after Send`,
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// RELIABILITY R14

/** A gateway in production mode against `open`'s api, answering through yoga's fetch handler. */
function productionGateway(): { gateway: Gateway; url: string } {
  const gateway = createGateway({
    apiUrl: open.h2cUrl,
    logger: recordingLogger(),
    production: true,
    maxSubscriptionsPerCaller: open.config.gateway.maxSubscriptionsPerCaller,
    maxBatch: open.config.gateway.maxBatch,
  });
  cleanups.add(() => gateway.close());
  return { gateway, url: 'http://gateway.test/graphql' };
}

/**
 * Asserts that the request was refused before execution: a 4xx with errors and no data (the
 * GraphQL-over-HTTP answer for a request that never ran), and the send it carries stored nothing.
 */
async function expectRejectedBeforeExecution(
  res: Response,
  user: string,
  status = 400,
): Promise<GqlError[]> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as GqlResult<unknown> | GqlResult<unknown>[];
  const results = Array.isArray(body) ? body : [body];
  const errors = results.flatMap((r) => r.errors ?? []);
  expect(errors.length, JSON.stringify(body).slice(0, 500)).toBeGreaterThan(0);
  for (const r of results) expect(r.data ?? null).toBeNull();
  expect(await storedCount(open, user)).toBe(0);
  return errors;
}

describe('protection (R14)', () => {
  it('rejects an operation 50 levels deep before execution', async () => {
    const user = `deep-${randomUUID()}`;
    // The schema has no cycles; nested inline fragments reach depth 50 in a valid operation.
    let selection = 'replayed';
    for (let i = 0; i < 49; i++) selection = `... on SendNotificationPayload { ${selection} }`;
    const query = `mutation Deep($input: SendNotificationInput!) {
      sendNotification(input: $input) { ${selection} }
    }`;
    const res = await post(gatewayOf(open), 'port', {
      query,
      variables: { input: emailInput(user) },
    });
    const errors = await expectRejectedBeforeExecution(res, user);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/depth limit of \d+ exceeded/i);

    // Named fragments count the same.
    const fragments = Array.from(
      { length: 50 },
      (_, i) =>
        `fragment F${i} on SendNotificationPayload { replayed ${i < 49 ? `...F${i + 1}` : ''} }`,
    ).join('\n');
    const viaFragments = await post(gatewayOf(open), 'yoga.fetch', {
      query: `mutation Deep($input: SendNotificationInput!) { sendNotification(input: $input) { ...F0 } }\n${fragments}`,
      variables: { input: emailInput(user) },
    });
    const fragmentErrors = await expectRejectedBeforeExecution(viaFragments, user);
    expect(fragmentErrors.map((e) => e.message).join('\n')).toMatch(/depth limit of \d+ exceeded/i);
  });

  it('rejects a page too costly to answer before execution, saying how the cost is counted', async () => {
    const res = await post(gatewayOf(open), 'port', {
      query: '{ notifications(first: 500) { edges { node { id userId status createdAt } } } }',
    });
    const body = (await res.json()) as { data?: unknown; errors?: { message: string }[] };

    expect(res.status).toBe(400);
    expect(body.data).toBeUndefined();
    expect(body.errors?.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /^Query Cost limit of 5000 exceeded, found [\d.]+\. A list's selection counts as many times as its `first` asks for/,
      ),
    ]);
  });

  it('rejects 1000 aliases before execution', async () => {
    const user = `aliases-${randomUUID()}`;
    const fields = Array.from(
      { length: 1000 },
      (_, i) => `a${i}: sendNotification(input: $input) { replayed }`,
    ).join('\n');
    const res = await post(gatewayOf(open), 'port', {
      query: `mutation Many($input: SendNotificationInput!) { ${fields} }`,
      variables: { input: emailInput(user) },
    });
    const errors = await expectRejectedBeforeExecution(res, user);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/alias|token/i);
  });

  it('rejects 1000 batched operations before execution', async () => {
    const user = `batch-${randomUUID()}`;
    const batch = Array.from({ length: 1000 }, () => ({
      query: SEND,
      variables: { input: emailInput(user) },
    }));
    const res = await post(gatewayOf(open), 'port', batch);
    const errors = await expectRejectedBeforeExecution(res, user, 413);
    expect(errors.map((e) => e.message).join('\n')).toMatch(/batch/i);
  });

  it('refuses introspection in production, and answers it in development', async () => {
    const { gateway, url } = productionGateway();
    const target = { fetch: gateway.fetch, url };
    for (const query of [
      '{ __schema { types { name } } }',
      '{ __type(name: "Notification") { fields { name } } }',
      '{ notifications(first: 1) { pageInfo { hasNextPage } } __schema { queryType { name } } }',
    ]) {
      const res = await post(target, 'yoga.fetch', { query });
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as GqlResult<unknown>;
      expect(body.errors?.length, query).toBeGreaterThan(0);
      expect(body.data ?? null).toBeNull();
      expect(JSON.stringify(body)).not.toMatch(/userId|SendNotificationPayload/);
    }
    // `__typename` is not introspection of the schema.
    const typename = await post(target, 'yoga.fetch', { query: '{ __typename }' });
    expect(((await typename.json()) as GqlResult<unknown>).data).toEqual({ __typename: 'Query' });

    const dev = await ok<{ __schema: { queryType: { name: string } } }>(open, 'yoga.fetch', {
      query: '{ __schema { queryType { name } } }',
    });
    expect(dev.__schema.queryType.name).toBe('Query');
  });

  it('leaves field suggestions out of every error message', async () => {
    const user = `suggest-${randomUUID()}`;
    const attempts: GqlRequest[] = [
      { query: '{ notificaton(id: "x") { id } }' },
      { query: '{ notification(idd: "x") { id } }' },
      { query: '{ notifications(first: 1) { edges { nod { id } } } }' },
      { query: '{ notifications(filter: { channels: [EMAL] }) { pageInfo { hasNextPage } } }' },
      { query: '{ notifications(filter: { userid: "u" }) { pageInfo { hasNextPage } } }' },
      { query: SEND, variables: { input: { ...emailInput(user), channel: 'EMAL' } } },
      {
        query: SEND,
        variables: { input: { ...emailInput(user), content: { subjct: 's', body: 'b' } } },
      },
      { query: SEND, variables: { input: { ...emailInput(user), priorty: 'HIGH' } } },
    ];
    const { gateway, url } = productionGateway();
    for (const attempt of attempts) {
      for (const target of [gatewayOf(open), { fetch: gateway.fetch, url }]) {
        const res = await post(target, 'yoga.fetch', attempt);
        const text = await res.text();
        const body = JSON.parse(text) as GqlResult<unknown>;
        expect(body.errors?.length, attempt.query).toBeGreaterThan(0);
        expect(text, text).not.toMatch(/did you mean/i);
      }
    }
    expect(await storedCount(open, user)).toBe(0);
  });

  it('serves no GraphiQL in production', async () => {
    const { gateway, url } = productionGateway();
    const page = (fetchHandler: (r: Request) => Promise<Response>) =>
      fetchHandler(new Request(url, { headers: { accept: 'text/html' } }));
    const prod = await page(gateway.fetch);
    expect(prod.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(await prod.text()).not.toMatch(/graphiql/i);

    const dev = await page(gatewayOf(open).fetch);
    expect(dev.headers.get('content-type')).toContain('text/html');
    expect(await dev.text()).toMatch(/graphiql/i);
  });
});

// ---------------------------------------------------------------------------------------------
// Subscriptions over SSE

interface Subscription {
  status: number;
  /** The next event's payload. */
  next(): Promise<GqlResult<unknown>>;
  /** Everything until the server ends the stream. */
  rest(): Promise<string>;
  close(): void;
}

/** A subscription over SSE to the gateway at `url`; closed after the test. */
async function subscribe(
  url: string,
  request: GqlRequest,
  headers: Record<string, string> = {},
): Promise<Subscription> {
  const abort = new AbortController();
  cleanups.add(() => abort.abort());
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify(request),
    signal: abort.signal,
  });
  if (res.body === null) throw new Error('no body');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  return {
    status: res.status,
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trim())
            .join('\n');
          if (data !== '') return JSON.parse(data) as GqlResult<unknown>;
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended; left: ${buffer}`);
        buffer += value;
      }
    },
    async rest() {
      let text = buffer;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return text;
        text += value;
      }
    },
    close: () => abort.abort(),
  };
}

/** The api's WatchNotifications streams open right now (its readiness counters). */
async function apiWatchStreams(h: TestHerald): Promise<number> {
  const res = await fetch(`${h.httpUrl}/readyz`);
  const report = (await res.json()) as { counters?: { watchStreams?: number } };
  const n = report.counters?.watchStreams;
  if (n === undefined) throw new Error('readyz counts no watch streams');
  return n;
}

const WATCH = `subscription Watch($id: ID!) { notificationUpdated(id: $id) { id status version } }`;

describe('subscriptions', () => {
  it('refuses a caller more concurrent subscriptions than the cap as RATE_LIMITED', async () => {
    const { notification } = await sendOk(
      secured,
      'yoga.fetch',
      emailInput(`watched-${randomUUID()}`, { sendAt: tomorrow() }),
      bearer(keys.a),
    );
    const url = gatewayOf(secured).url;
    const watch = { query: WATCH, variables: { id: notification.id } };
    const current = {
      notificationUpdated: { id: notification.id, status: 'SCHEDULED', version: 1 },
    };
    const held: Subscription[] = [];
    for (let i = 0; i < MAX_SUBSCRIPTIONS; i++) {
      const s = await subscribe(url, watch, bearer(keys.a));
      const first = await s.next();
      expect(first.errors).toBeUndefined();
      expect(first.data).toEqual(current);
      held.push(s);
    }

    const streams = await apiWatchStreams(secured);
    const extra = await subscribe(url, watch, bearer(keys.a));
    const refused = await extra.next();
    expect(refused.data ?? null).toBeNull();
    expect(refused.errors?.map((e) => e.extensions?.code)).toEqual(['RATE_LIMITED']);
    expect(await extra.rest()).not.toContain('data: {"data"');
    // Refused before any stream to the api was opened.
    expect(await apiWatchStreams(secured)).toBe(streams);

    // The cap is per caller: another credential of the same tenant still subscribes.
    const other = await subscribe(url, watch, bearer(keys.aRead));
    expect((await other.next()).data).toEqual(current);

    // Leaving gives the place back and cancels the api stream at once, though the notification
    // will not change before tomorrow.
    const before = await apiWatchStreams(secured);
    held[0]?.close();
    await expect.poll(() => apiWatchStreams(secured), { timeout: 10_000 }).toBe(before - 1);
    const again = await subscribe(url, watch, bearer(keys.a));
    expect(await again.next()).toEqual({ data: current });
  });

  it('ends open subscriptions when the gateway closes, and logs no error for them', async () => {
    const { notification } = await sendOk(
      open,
      'yoga.fetch',
      emailInput(`closing-${randomUUID()}`, { sendAt: tomorrow() }),
    );
    const logger = recordingLogger();
    const gateway = createGateway({
      apiUrl: open.h2cUrl,
      logger,
      production: false,
      maxSubscriptionsPerCaller: 5,
      maxBatch: 10,
    });
    let closed = false;
    cleanups.add(async () => {
      if (!closed) await gateway.close();
    });
    const port = await gateway.listen('127.0.0.1', 0);
    const before = await apiWatchStreams(open);
    const s = await subscribe(`http://127.0.0.1:${port}/graphql`, {
      query: WATCH,
      variables: { id: notification.id },
    });
    expect((await s.next()).errors).toBeUndefined();
    expect(await apiWatchStreams(open)).toBe(before + 1);

    await gateway.close();
    closed = true;
    // The stream ends (the connection may be cut before the last event is written).
    await s.rest().catch(() => '');
    await expect.poll(() => apiWatchStreams(open), { timeout: 10_000 }).toBe(before);
    expect(logger.entries.filter((e) => e.level === 'error' || e.level === 'warn')).toEqual([]);
  });

  it('refuses an over-deep operation over WebSocket as its own error, keeping the socket', async () => {
    const { notification } = await sendOk(
      open,
      'yoga.fetch',
      emailInput(`ws-${randomUUID()}`, { sendAt: tomorrow() }),
    );
    let closes = 0;
    const client = createClient({
      url: gatewayOf(open).url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      on: { closed: () => closes++ },
    });
    cleanups.add(() => client.dispose());

    let deep = 'version';
    for (let i = 0; i < 49; i++) deep = `... on Notification { ${deep} }`;
    const refused = await firstOf(client, {
      query: `subscription Deep($id: ID!) { notificationUpdated(id: $id) { ${deep} } }`,
      variables: { id: notification.id },
    });
    expect(refused.kind).toBe('error');
    expect(JSON.stringify(refused.value)).toMatch(/depth limit of \d+ exceeded/i);

    const fine = await firstOf(client, { query: WATCH, variables: { id: notification.id } });
    expect(fine).toEqual({
      kind: 'next',
      value: {
        data: { notificationUpdated: { id: notification.id, status: 'SCHEDULED', version: 1 } },
      },
    });
    expect(closes).toBe(0);
  });
});

/** The first thing a graphql-ws subscription gives: a result, or its error; then unsubscribes. */
function firstOf(
  client: Client,
  request: GqlRequest,
): Promise<{ kind: 'next' | 'error' | 'complete'; value: unknown }> {
  return new Promise((resolve) => {
    let unsubscribe = () => {};
    unsubscribe = client.subscribe(request, {
      next: (value) => {
        resolve({ kind: 'next', value });
        unsubscribe();
      },
      error: (value) => resolve({ kind: 'error', value }),
      complete: () => resolve({ kind: 'complete', value: null }),
    });
  });
}
