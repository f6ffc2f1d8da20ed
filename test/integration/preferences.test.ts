/**
 * PreferenceService and the Send path's opt-out decision: an opted-out Send is stored SUPPRESSED
 * with its reason and never delivered (even without an address on record); a required category is
 * delivered despite an opt-out; tenant defaults and channel-wide opt-outs apply; an opt-out made
 * while a notification is SCHEDULED suppresses it at release (scheduler or DeliverNow); a user
 * token reaches only its own preferences. Each test runs in a tenant of its own, so tenant settings
 * never leak from one test into another.
 */
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Channel, NotificationStatus, createHeraldClient, type HeraldClient } from '@herald/client';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type {
  SendRequestSchema,
  WatchNotificationsResponse,
} from '@herald/client/gen/herald/v1/notification_pb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { countingPool } from '../support/postgres.js';
import { createPreferenceStore } from '../../src/infra/postgres/preference-store.js';

const MASTER = 'preferences-test-master-secret-0123456789';

let t: TestHerald;
/** The current test's tenant, and a client with every scope in it. */
let tenant: string;
let herald: HeraldClient;
const clients: HeraldClient[] = [];

function clientWith(apiKey: string): HeraldClient {
  const c = createHeraldClient({ baseUrl: t.h2cUrl, apiKey });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  t = await startTestHerald({ env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: MASTER } });
});

beforeEach(async () => {
  tenant = `tenant-prefs-${randomUUID()}`;
  herald = clientWith(await createTestApiKey(t.db.pool, tenant, ['send', 'read', 'admin']));
});

afterAll(async () => {
  for (const c of clients) c.close();
  await t?.stop();
});

const user = () => `p-${randomUUID()}`;
type Send = MessageInitShape<typeof SendRequestSchema>;
const email = (userId: string, category: string, more: { idempotencyKey?: string } = {}): Send => ({
  userId,
  channel: Channel.EMAIL,
  to: 'a@example.com',
  category,
  content: { subject: 's', body: 'b' },
  ...more,
});
const sms = (userId: string, category: string): Send => ({
  userId,
  channel: Channel.SMS,
  to: '+15550001234',
  category,
  content: { body: 'b' },
});

async function delivered(id: string) {
  await expect
    .poll(async () => (await herald.getNotification({ id })).notification?.status, {
      timeout: 20_000,
      interval: 50,
    })
    .toBe(NotificationStatus.DELIVERED);
  await expect.poll(() => t.deliveries().includes(id), { timeout: 5_000 }).toBe(true);
}

/**
 * Sends a notification that nothing holds back to the same user and waits for its delivery: the
 * worker has then long had any chance to deliver `id`, which must still be SUPPRESSED and absent
 * from the provider's deliveries.
 */
async function expectNeverDelivered(
  id: string,
  userId: string,
  reason: string,
  /** The history before the suppression (e.g. SCHEDULED, when it was suppressed at release). */
  before: [NotificationStatus, string][] = [],
) {
  const control = await herald.send(email(userId, 'control'));
  await delivered(control.id);
  const got = await herald.getNotification({ id });
  expect(got.notification).toMatchObject({
    status: NotificationStatus.SUPPRESSED,
    statusReason: reason,
    attempt: 0,
  });
  expect(got.events.map((e) => [e.status, e.error])).toEqual([
    ...before,
    [NotificationStatus.SUPPRESSED, reason],
  ]);
  expect(t.deliveries()).not.toContain(id);
}

describe('Send with preferences', () => {
  it('suppresses an opted-out category with the reason and never delivers it', async () => {
    const u = user();
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { rules: [{ channel: Channel.EMAIL, category: 'marketing', enabled: false }] },
    });
    // The rate limit reports the quota a Send took; a suppressed one takes none.
    const policies: (string | null)[] = [];
    const onHeader = (h: Headers) => policies.push(h.get('ratelimit-policy'));
    const res = await herald.send(email(u, 'marketing'), { onHeader });
    expect(res.status).toBe(NotificationStatus.SUPPRESSED);
    await herald.send(email(u, 'other'), { onHeader });
    expect(policies[0]).toBeNull();
    expect(policies[1]).toMatch(/;q=100000;/);
    await expectNeverDelivered(
      res.id,
      u,
      'opted out of category "marketing" on email (user preference)',
    );
    // The opt-out is for email only.
    const onSms = await herald.send(sms(u, 'marketing'));
    expect(onSms.status).toBe(NotificationStatus.PENDING);
    await delivered(onSms.id);
  });

  it('delivers a required category despite an opt-out', async () => {
    const u = user();
    await herald.preferences.updateTenantPreferences({
      preferences: { requiredCategories: ['security'] },
    });
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: {
        rules: [
          { channel: Channel.EMAIL, enabled: false },
          { category: 'security', enabled: false },
        ],
      },
    });
    const res = await herald.send(email(u, 'security'));
    expect(res.status).toBe(NotificationStatus.PENDING);
    await delivered(res.id);
    const other = await herald.send(email(u, 'digest'));
    expect(other.status).toBe(NotificationStatus.SUPPRESSED);
  });

  it('applies the tenant default unless the user rules otherwise', async () => {
    await herald.preferences.updateTenantPreferences({
      preferences: { defaultRules: [{ category: 'promo', enabled: false }] },
    });
    const u = user();
    const res = await herald.send(email(u, 'promo'));
    expect(res.status).toBe(NotificationStatus.SUPPRESSED);
    await expectNeverDelivered(
      res.id,
      u,
      'opted out of category "promo" on every channel (tenant default)',
    );
    const optedIn = user();
    await herald.preferences.updatePreferences({
      userId: optedIn,
      preferences: { rules: [{ channel: Channel.EMAIL, category: 'promo', enabled: true }] },
    });
    await delivered((await herald.send(email(optedIn, 'promo'))).id);
  });

  it('suppresses every category on a channel the user opted out of', async () => {
    const u = user();
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { rules: [{ channel: Channel.SMS, enabled: false }] },
    });
    const suppressed: string[] = [];
    for (const category of ['orders', '']) {
      const res = await herald.send(sms(u, category));
      expect(res.status).toBe(NotificationStatus.SUPPRESSED);
      const got = await herald.getNotification({ id: res.id });
      expect(got.notification?.statusReason).toBe('opted out of sms (user preference)');
      suppressed.push(res.id);
    }
    // Only once a later Send is delivered could the worker have delivered the suppressed ones.
    await delivered((await herald.send(email(u, 'orders'))).id);
    for (const id of suppressed) expect(t.deliveries()).not.toContain(id);
  });

  it('suppresses an opted-out Send even when the recipient has no address for it', async () => {
    const u = user();
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { rules: [{ channel: Channel.EMAIL, enabled: false }] },
    });
    // No `to` and no recipient on record: the opt-out, not the missing address, decides.
    const res = await herald.send({ ...email(u, 'news'), to: '' });
    expect(res.status).toBe(NotificationStatus.SUPPRESSED);
    const got = await herald.getNotification({ id: res.id });
    expect(got.notification).toMatchObject({
      status: NotificationStatus.SUPPRESSED,
      statusReason: 'opted out of email (user preference)',
      to: '',
    });
  });

  it('publishes the reason with the live first state, as the stored history has it', async () => {
    const u = user();
    const reason = 'opted out of category "digest" on every channel (user preference)';
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { rules: [{ category: 'digest', enabled: false }] },
    });
    const stop = new AbortController();
    const stream = herald
      .watchNotifications(
        { target: { case: 'userId', value: u }, statuses: [NotificationStatus.SUPPRESSED] },
        { signal: stop.signal },
      )
      [Symbol.asyncIterator]();
    let live: WatchNotificationsResponse | null = null;
    const next = stream.next().then((r) => {
      if (!r.done) live = r.value;
    });
    const sent: string[] = [];
    try {
      // The watch goes live at some point after the call: send until one reaches it (live only,
      // as the watch asks for no initial states).
      await expect
        .poll(
          async () => {
            if (live === null) sent.push((await herald.send(email(u, 'digest'))).id);
            return live !== null;
          },
          { timeout: 10_000, interval: 50 },
        )
        .toBe(true);
      await next;
    } finally {
      stop.abort();
    }
    const state = live as WatchNotificationsResponse | null;
    expect(sent).toContain(state?.notification?.id);
    expect(state?.notification?.statusReason).toBe(reason);
    expect(state?.event).toMatchObject({
      status: NotificationStatus.SUPPRESSED,
      version: 1n,
      error: reason,
    });
  });

  it('replays a suppressed Send by its idempotency key', async () => {
    const u = user();
    await herald.preferences.updatePreferences({
      userId: u,
      preferences: { rules: [{ category: 'news', enabled: false }] },
    });
    const req = email(u, 'news', { idempotencyKey: `k-${u}` });
    const first = await herald.send(req);
    const again = await herald.send(req);
    expect(again).toMatchObject({
      id: first.id,
      status: NotificationStatus.SUPPRESSED,
      replayed: true,
    });
  });
});

describe('an opt-out made while a notification is SCHEDULED', () => {
  const reason = 'opted out of category "digest" on every channel (user preference)';
  const scheduledEvent: [NotificationStatus, string][] = [[NotificationStatus.SCHEDULED, '']];
  async function optOut(userId: string) {
    await herald.preferences.updatePreferences({
      userId,
      preferences: { rules: [{ category: 'digest', enabled: false }] },
    });
  }

  it('suppresses it at DeliverNow, which bypasses quiet hours but not opt-outs', async () => {
    const u = user();
    const res = await herald.send({
      ...email(u, 'digest'),
      sendAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
    });
    expect(res.status).toBe(NotificationStatus.SCHEDULED);
    await optOut(u);
    const now = await herald.deliverNow({ id: res.id });
    expect(now.notification).toMatchObject({
      status: NotificationStatus.SUPPRESSED,
      statusReason: reason,
    });
    await expectNeverDelivered(res.id, u, reason, scheduledEvent);
  });

  it('suppresses it when the scheduler releases it', async () => {
    const u = user();
    const res = await herald.send({
      ...email(u, 'digest'),
      sendAt: timestampFromDate(new Date(Date.now() + 2_500)),
    });
    expect(res.status).toBe(NotificationStatus.SCHEDULED);
    await optOut(u);
    await expect
      .poll(async () => (await herald.getNotification({ id: res.id })).notification?.status, {
        timeout: 20_000,
        interval: 50,
      })
      .toBe(NotificationStatus.SUPPRESSED);
    await expectNeverDelivered(res.id, u, reason, scheduledEvent);
  });
});

describe('PreferenceService', () => {
  it('returns what was stored, with the tenant settings and effective quiet hours', async () => {
    const u = user();
    const empty = await herald.preferences.getPreferences({ userId: u });
    expect(empty.preferences).toMatchObject({ userId: u, rules: [] });
    expect(empty.preferences?.quietHours).toBeUndefined();
    expect(empty.preferences?.updatedAt).toBeUndefined();

    const updated = await herald.preferences.updatePreferences({
      userId: u,
      preferences: {
        rules: [{ channel: Channel.PUSH, category: 'chat', enabled: false }],
        quietHours: { enabled: true, start: '23:00', end: '07:30' },
      },
    });
    const got = await herald.preferences.getPreferences({ userId: u });
    expect(got.preferences).toEqual(updated.preferences);
    expect(got.preferences?.rules).toMatchObject([
      { channel: Channel.PUSH, category: 'chat', enabled: false },
    ]);
    expect(got.effectiveQuietHours).toMatchObject({ enabled: true, start: '23:00', end: '07:30' });
    expect(got.tenant?.defaultTimeZone).toBe('UTC');

    const tenant = await herald.preferences.getTenantPreferences({});
    expect(got.tenant).toEqual(tenant.preferences);
  });

  it('follows the deployment’s default quiet hours when the tenant sets none, storing none', async () => {
    const own = await herald.preferences.updateTenantPreferences({
      preferences: { quietHours: { enabled: true, start: '21:00', end: '06:00' } },
    });
    expect(own.preferences).toMatchObject({
      quietHours: { enabled: true, start: '21:00', end: '06:00' },
      quietHoursDefault: false,
    });
    const u = user();
    expect((await herald.preferences.getPreferences({ userId: u })).effectiveQuietHours).toEqual(
      own.preferences?.quietHours,
    );

    // Unset: the deployment's HERALD_DEFAULT_QUIET_HOURS (off in tests), not a copy of it.
    await herald.preferences.updateTenantPreferences({
      preferences: { requiredCategories: ['security'] },
    });
    const settings = (await herald.preferences.getTenantPreferences({})).preferences;
    expect(settings).toMatchObject({
      quietHours: { enabled: false, start: '', end: '' },
      quietHoursDefault: true,
      requiredCategories: ['security'],
    });
    const { rows } = await t.db.pool.query<{ quiet_enabled: boolean | null }>(
      'select quiet_enabled from tenant_settings where tenant_id = $1',
      [tenant],
    );
    expect(rows).toEqual([{ quiet_enabled: null }]);
    const got = await herald.preferences.getPreferences({ userId: u });
    expect(got.tenant).toEqual(settings);
    expect(got.effectiveQuietHours).toMatchObject({ enabled: false });
  });

  it('names every bad field', async () => {
    const err = await rejection(
      herald.preferences.updatePreferences({
        userId: user(),
        preferences: {
          rules: [
            { enabled: false },
            { channel: 42 as Channel, category: 'Bad Category', enabled: false },
            { channel: Channel.EMAIL, enabled: true },
            { channel: Channel.EMAIL, enabled: false },
          ],
          quietHours: { enabled: true, start: '25:00', end: '7:00' },
        },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err).sort()).toEqual(
      [
        'preferences.rules[0]',
        'preferences.rules[1].channel',
        'preferences.rules[1].category',
        'preferences.rules[3]',
        'preferences.quiet_hours.start',
        'preferences.quiet_hours.end',
      ].sort(),
    );
    const tenant = await rejection(
      herald.preferences.updateTenantPreferences({
        preferences: {
          requiredCategories: ['security', 'security', ''],
          quietHours: { enabled: true, start: '08:00', end: '08:00' },
          defaultTimeZone: 'Mars/Olympus',
        },
      }),
    );
    expect(violatedFields(tenant).sort()).toEqual(
      [
        'preferences.required_categories[1]',
        'preferences.required_categories[2]',
        'preferences.quiet_hours.end',
        'preferences.default_time_zone',
      ].sort(),
    );
  });

  it('lets a user token read and change only its own preferences', async () => {
    const u = user();
    const token = issueUserToken({ master: MASTER, tenantId: tenant, userId: u });
    const mine = clientWith(token);
    const updated = await mine.preferences.updatePreferences({
      preferences: { rules: [{ category: 'marketing', enabled: false }] },
    });
    expect(updated.preferences?.userId).toBe(u);
    // The service account sees the user's change.
    const seen = await herald.preferences.getPreferences({ userId: u });
    expect(seen.preferences?.rules).toMatchObject([{ category: 'marketing', enabled: false }]);
    expect((await mine.preferences.getPreferences({ userId: u })).preferences?.userId).toBe(u);

    const other = user();
    for (const call of [
      () => mine.preferences.getPreferences({ userId: other }),
      () => mine.preferences.updatePreferences({ userId: other, preferences: {} }),
      () => mine.preferences.getTenantPreferences({}),
      () => mine.preferences.updateTenantPreferences({ preferences: {} }),
    ]) {
      expect((await rejection(call())).code).toBe(Code.PermissionDenied);
    }
    expect((await herald.preferences.getPreferences({ userId: other })).preferences?.rules).toEqual(
      [],
    );
  });

  it('needs read to get, send to update, and admin for the tenant settings', async () => {
    const reader = clientWith(await createTestApiKey(t.db.pool, tenant, ['read']));
    const sender = clientWith(await createTestApiKey(t.db.pool, tenant, ['send']));
    const u = user();
    await reader.preferences.getPreferences({ userId: u });
    expect(
      (await rejection(reader.preferences.updatePreferences({ userId: u, preferences: {} }))).code,
    ).toBe(Code.PermissionDenied);
    await sender.preferences.updatePreferences({ userId: u, preferences: {} });
    expect((await rejection(sender.preferences.getTenantPreferences({}))).code).toBe(
      Code.PermissionDenied,
    );
  });
});

describe("the Send path's preference reads", () => {
  it("share one statement when concurrent, each Send getting its own user's", async () => {
    const { pool, statements } = countingPool(t.db.pool);
    const store = createPreferenceStore(pool);
    const own = `batched-${randomUUID()}`;
    const users = Array.from({ length: 50 }, (_, i) => `reader-${i}`);
    await store.putUser(own, {
      userId: 'reader-7',
      rules: [{ channel: 'sms', category: null, enabled: false }],
      quietHours: null,
    });
    statements.count = 0;

    const read = await Promise.all(users.map((u) => store.read(own, u)));

    // Every call arrived in the same event-loop turn: they all go in one statement.
    expect(statements.count).toBe(1);
    expect(read.map((r) => r.user?.userId ?? null)).toEqual(
      users.map((u) => (u === 'reader-7' ? u : null)),
    );
    expect(read[7]?.user?.rules).toEqual([{ channel: 'sms', category: null, enabled: false }]);
  });
});
