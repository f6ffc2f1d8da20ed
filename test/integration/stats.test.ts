/**
 * GetStats: counts by channel × status match the stored rows; the window includes created_after
 * and excludes created_before; defaults (the last 24 hours) and the 31-day cap; only the caller's
 * tenant is counted; bad requests name each bad field; `read` scope, no user tokens; and the plan
 * of the stats query, on 120,000 rows of 8 tenants: the window's range of the covering index
 * (visiting only the window's heap pages while they are not all-visible, and none once vacuum has
 * run), never a scan of the table.
 */
import { randomUUID } from 'node:crypto';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import {
  Channel,
  NotificationStatus,
  createHeraldClient,
  type GetStatsResponse,
  type HeraldClient,
} from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHANNELS,
  STATUSES,
  type Channel as DomainChannel,
} from '../../src/domain/notification.js';
import type { Notification, Status } from '../../src/domain/notification.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { statsQuery } from '../../src/infra/postgres/notification-stats.js';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { createTestApiKey } from '../support/access.js';
import { rejection, violatedFields } from '../support/connect.js';
import { draftNotification } from '../support/fixtures.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const MASTER = 'stats-test-master-secret-0123456789abcdef';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** A window in the past, so nothing else the test sends lands in it. */
const T0 = new Date('2026-03-01T00:00:00.000Z');
const T1 = new Date(T0.getTime() + HOUR);

let t: TestHerald;
const clients: HeraldClient[] = [];

/** Only the api: no worker moves the rows the tests write, so their statuses stay as written. */
beforeAll(async () => {
  t = await startTestHerald({
    roles: ['api'],
    gateway: true,
    env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: MASTER },
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

async function clientOf(tenant: string, scopes: ('send' | 'read')[] = ['read']) {
  const c = createHeraldClient({
    baseUrl: t.h2cUrl,
    apiKey: await createTestApiKey(t.db.pool, tenant, scopes),
  });
  clients.push(c);
  return c;
}

async function store(rows: Notification[]) {
  const s = createNotificationStore(t.db.pool);
  await Promise.all(rows.map((n) => s.insert(n, null)));
}

function row(tenantId: string, channel: DomainChannel, status: Status, createdAt: Date) {
  return draftNotification({ tenantId, channel, status, createdAt, userId: 'u1' });
}

/** The rows of a response as [CHANNEL, STATUS, count] in response order. */
const table = (res: GetStatsResponse) =>
  res.rows.map((r) => [Channel[r.channel], NotificationStatus[r.status], Number(r.count)]);

/** The expected table of `rows` in [after, before), ordered as the api orders it. */
function expected(rows: Notification[], after: Date, before: Date) {
  const counts = new Map<string, number>();
  for (const n of rows) {
    if (n.createdAt < after || n.createdAt >= before) continue;
    const k = `${n.channel}/${n.status}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return CHANNELS.flatMap((c) =>
    STATUSES.flatMap((s) => {
      const count = counts.get(`${c}/${s}`);
      return count === undefined ? [] : [[c.toUpperCase(), s, count]];
    }),
  );
}

/** A mix over every channel and several statuses, some pairs empty, spread over [T0, T1). */
function mix(tenantId: string): Notification[] {
  const statuses: Status[] = ['PENDING', 'DELIVERED', 'DELIVERED', 'FAILED', 'SUPPRESSED'];
  return Array.from({ length: 120 }, (_, i) =>
    row(
      tenantId,
      CHANNELS[i % CHANNELS.length] as DomainChannel,
      // Channel and status move together in steps that leave some pairs empty.
      statuses[Math.floor(i / 7) % statuses.length] as Status,
      new Date(T0.getTime() + ((i * 29_989) % HOUR)),
    ),
  );
}

const window = { createdAfter: timestampFromDate(T0), createdBefore: timestampFromDate(T1) };

describe('GetStats', () => {
  it('counts every channel × status pair of the window and leaves out empty pairs', async () => {
    const tenant = `s-${randomUUID()}`;
    const rows = mix(tenant);
    await store(rows);
    const res = await (await clientOf(tenant)).getStats(window);
    const want = expected(rows, T0, T1);
    expect(table(res)).toEqual(want);
    expect(want.length).toBeLessThan(CHANNELS.length * STATUSES.length);
    expect(Number(res.total)).toBe(rows.length);
    // And what PostgreSQL holds, counted the plain way.
    const { rows: db } = await t.db.pool.query<{ n: string }>(
      'select count(*) as n from notification where tenant_id = $1',
      [tenant],
    );
    expect(Number(res.total)).toBe(Number(db[0]?.n));
  });

  it('counts created_after inclusively and created_before exclusively', async () => {
    const tenant = `s-${randomUUID()}`;
    const at = (ms: number) => row(tenant, 'email', 'DELIVERED', new Date(ms));
    await store([at(T0.getTime() - 1), at(T0.getTime()), at(T1.getTime() - 1), at(T1.getTime())]);
    const res = await (await clientOf(tenant)).getStats(window);
    expect(table(res)).toEqual([['EMAIL', 'DELIVERED', 2]]);
    expect(timestampDate(res.createdAfter!)).toEqual(T0);
    expect(timestampDate(res.createdBefore!)).toEqual(T1);
  });

  it('counts only the caller’s tenant', async () => {
    const a = `s-a-${randomUUID()}`;
    const b = `s-b-${randomUUID()}`;
    const rowsA = mix(a);
    const rowsB = [row(b, 'sms', 'FAILED', T0), row(b, 'sms', 'FAILED', T0)];
    await store([...rowsA, ...rowsB]);
    expect(table(await (await clientOf(a)).getStats(window))).toEqual(expected(rowsA, T0, T1));
    const resB = await (await clientOf(b)).getStats(window);
    expect(table(resB)).toEqual([['SMS', 'FAILED', 2]]);
    expect(resB.total).toBe(2n);
  });

  it('counts only the channels asked for', async () => {
    const tenant = `s-${randomUUID()}`;
    const rows = mix(tenant);
    await store(rows);
    const res = await (
      await clientOf(tenant)
    ).getStats({ ...window, channels: [Channel.SMS, Channel.IN_APP] });
    const want = expected(
      rows.filter((n) => n.channel === 'sms' || n.channel === 'in_app'),
      T0,
      T1,
    );
    expect(table(res)).toEqual(want);
    expect(Number(res.total)).toBe(want.reduce((sum, r) => sum + Number(r[2]), 0));
  });

  it('counts the last 24 hours when no window is given', async () => {
    const tenant = `s-${randomUUID()}`;
    const now = Date.now();
    await store([
      row(tenant, 'push', 'PENDING', new Date(now - HOUR)),
      row(tenant, 'push', 'PENDING', new Date(now - DAY - HOUR)),
    ]);
    const res = await (await clientOf(tenant)).getStats({});
    const after = Date.now();
    expect(table(res)).toEqual([['PUSH', 'PENDING', 1]]);
    const before = timestampDate(res.createdBefore!).getTime();
    expect(before).toBeGreaterThanOrEqual(now);
    expect(before).toBeLessThanOrEqual(after);
    expect(before - timestampDate(res.createdAfter!).getTime()).toBe(DAY);

    // created_after alone: the window runs to now.
    const since = await (
      await clientOf(tenant)
    ).getStats({ createdAfter: timestampFromDate(new Date(now - 2 * DAY)) });
    expect(table(since)).toEqual([['PUSH', 'PENDING', 2]]);
  });

  it('accepts a window of exactly 31 days', async () => {
    const tenant = `s-${randomUUID()}`;
    await store([row(tenant, 'webhook', 'CANCELLED', T0)]);
    const res = await (
      await clientOf(tenant)
    ).getStats({
      createdAfter: timestampFromDate(T0),
      createdBefore: timestampFromDate(new Date(T0.getTime() + 31 * DAY)),
    });
    expect(table(res)).toEqual([['WEBHOOK', 'CANCELLED', 1]]);
  });

  it('names each bad field when the window or the channels are invalid', async () => {
    const c = await clientOf(`s-${randomUUID()}`);
    const cases: [Parameters<HeraldClient['getStats']>[0], string[], RegExp][] = [
      [
        { createdAfter: window.createdBefore, createdBefore: window.createdAfter },
        ['created_before'],
        /must be after created_after/,
      ],
      [
        { createdAfter: window.createdAfter, createdBefore: window.createdAfter },
        ['created_before'],
        /must be after created_after/,
      ],
      [
        {
          createdAfter: timestampFromDate(T0),
          createdBefore: timestampFromDate(new Date(T0.getTime() + 31 * DAY + 1)),
        },
        ['created_after'],
        /at most 31 days before created_before/,
      ],
      [
        { createdAfter: timestampFromDate(new Date(Date.now() - 32 * DAY)) },
        ['created_after'],
        /at most 31 days before created_before \(which defaults to now\)/,
      ],
      [
        { createdAfter: timestampFromDate(new Date(Date.now() + HOUR)) },
        ['created_before'],
        /defaults to now/,
      ],
      [{ ...window, channels: [Channel.UNSPECIFIED] }, ['channels'], /defined values/],
      [{ ...window, channels: [99 as Channel] }, ['channels'], /defined values/],
      [
        { ...window, channels: [Channel.UNSPECIFIED, Channel.EMAIL, 9 as Channel] },
        ['channels'],
        /channels: must be defined values \(got 0, 9\)/,
      ],
      [
        { createdAfter: { seconds: 1n, nanos: -1 }, channels: [Channel.UNSPECIFIED] },
        ['created_after', 'channels'],
        /created_after: must be a valid timestamp; channels: must be defined values/,
      ],
      // An undefined channel does not hide the window's own problem.
      [
        { createdAfter: timestampFromDate(new Date(Date.now() + HOUR)), channels: [9 as Channel] },
        ['channels', 'created_before'],
        /channels: must be defined values \(got 9\); created_before: defaults to now/,
      ],
    ];
    for (const [req, fields, message] of cases) {
      const err = await rejection(c.getStats(req));
      expect(err.code, JSON.stringify(fields)).toBe(Code.InvalidArgument);
      expect(violatedFields(err)).toEqual(fields);
      expect(err.rawMessage).toMatch(message);
    }
  });

  it('answers the GraphQL stats query with the caller’s counts', async () => {
    const tenant = `s-${randomUUID()}`;
    const rows = mix(tenant);
    await store(rows);
    const apiKey = await createTestApiKey(t.db.pool, tenant, ['read']);
    const res = await t.gatewayFetch!(
      new Request(t.gatewayUrl!, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          authorization: `Bearer ${apiKey}`,
        },
        body: JSON.stringify({
          query: `query Stats($after: DateTime, $before: DateTime, $channels: [Channel!]) {
            stats(createdAfter: $after, createdBefore: $before, channels: $channels) {
              createdAfter createdBefore total rows { channel status count }
            }
          }`,
          variables: { after: T0.toISOString(), before: T1.toISOString(), channels: ['EMAIL'] },
        }),
      }),
    );
    const body = (await res.json()) as { data?: { stats: unknown }; errors?: unknown[] };
    expect(body.errors).toBeUndefined();
    const want = expected(
      rows.filter((n) => n.channel === 'email'),
      T0,
      T1,
    );
    expect(body.data?.stats).toEqual({
      createdAfter: T0.toISOString(),
      createdBefore: T1.toISOString(),
      total: want.reduce((sum, r) => sum + Number(r[2]), 0),
      rows: want.map(([channel, status, count]) => ({ channel, status, count })),
    });
  });

  it('needs the read scope and refuses user tokens', async () => {
    const tenant = `s-${randomUUID()}`;
    const sendOnly = await clientOf(tenant, ['send']);
    const denied = await rejection(sendOnly.getStats(window));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).toBe('GetStats needs the read scope');

    const user = createHeraldClient({
      baseUrl: t.h2cUrl,
      apiKey: issueUserToken({ master: MASTER, tenantId: tenant, userId: 'u1' }),
    });
    clients.push(user);
    expect((await rejection(user.getStats(window))).code).toBe(Code.PermissionDenied);
  });
});

describe('GetStats query plan', () => {
  interface PlanNode {
    'Node Type': string;
    'Relation Name'?: string;
    'Index Name'?: string;
    Plans?: PlanNode[];
  }
  /** The nodes of a plan, depth first. */
  const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];

  const bulk = `bulk-${randomUUID().slice(0, 8)}`;
  const start = new Date('2025-03-01T00:00:00Z');
  /** A day, and the longest window, of one tenant; all channels and two. */
  const windows = [
    { span: DAY, channels: [] },
    { span: 31 * DAY, channels: [] },
    { span: 31 * DAY, channels: ['email', 'sms'] as DomainChannel[] },
  ].map((w) => ({
    ...w,
    label: `${w.span / DAY} days, channels ${w.channels.join(',') || 'all'}`,
    query: statsQuery(`${bulk}-3`, {
      createdAfter: start,
      createdBefore: new Date(start.getTime() + w.span),
      channels: w.channels,
    }),
  }));

  async function plan(query: { text: string; values: unknown[] }): Promise<PlanNode[]> {
    const { rows } = await t.db.pool.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `explain (format json) ${query.text}`,
      query.values,
    );
    return nodes(rows[0]!['QUERY PLAN'][0].Plan);
  }

  beforeAll(async () => {
    // 120,000 rows over 200 days for 8 tenants, interleaved in time as real traffic is, with
    // contents of a realistic size.
    await t.db.pool.query(
      `insert into notification (id, tenant_id, user_id, channel, priority, content, status,
         created_at, updated_at)
       select gen_random_uuid(), $1 || '-' || (i % 8), 'user-' || (i % 5000),
         (array['email', 'sms', 'push', 'in_app', 'webhook'])[1 + (i / 7) % 5], 'normal',
         jsonb_build_object('subject', 'Your order has shipped', 'body', repeat('x', 300)),
         (array['PENDING', 'SCHEDULED', 'PROCESSING', 'RETRYING', 'DELIVERED', 'FAILED',
           'CANCELLED', 'SUPPRESSED'])[1 + (i / 3) % 8],
         $2::timestamptz + i * interval '144 seconds', $2::timestamptz + i * interval '144 seconds'
       from generate_series(1, 120000) as i`,
      [bulk, '2025-01-01T00:00:00Z'],
    );
  });

  it('reads the window through the index, never the whole table, on freshly written rows', async () => {
    // Statistics only: no page is marked all-visible yet, as for rows just written or updated.
    await t.db.pool.query('analyze notification');
    for (const w of windows) {
      const p = await plan(w.query);
      expect(
        p.filter((n) => n['Node Type'].includes('Seq Scan')),
        w.label,
      ).toEqual([]);
      expect(
        p.filter((n) => n['Index Name'] === 'notification_tenant_window_idx'),
        w.label,
      ).toHaveLength(1);
      for (const n of p.filter((x) => x['Relation Name'] === 'notification')) {
        expect(['Bitmap Heap Scan', 'Index Scan', 'Index Only Scan'], w.label).toContain(
          n['Node Type'],
        );
      }
    }
  });

  it('is an index-only scan of the window once vacuum has run', async () => {
    await t.db.pool.query('vacuum analyze notification');
    for (const w of windows) {
      const p = await plan(w.query);
      expect(
        p
          .filter((n) => n['Relation Name'] === 'notification')
          .map((n) => [n['Node Type'], n['Index Name']]),
        w.label,
      ).toEqual([['Index Only Scan', 'notification_tenant_window_idx']]);
      // And its answer is the plain count's.
      const { rows } = await t.db.pool.query<{ count: string }>(w.query.text, w.query.values);
      const { rows: plain } = await t.db.pool.query<{ n: string }>(
        `select count(*) as n from notification
         where tenant_id = $1 and created_at >= $2 and created_at < $3
           and (cardinality($4::text[]) = 0 or channel = any($4::text[]))`,
        [...w.query.values.slice(0, 3), w.channels],
      );
      const total = rows.reduce((sum, r) => sum + Number(r.count), 0);
      expect(total, w.label).toBe(Number(plain[0]?.n));
      expect(total, w.label).toBeGreaterThan(0);
    }
  });
});
