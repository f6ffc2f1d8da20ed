/**
 * The delivery decision: required categories, then the user's most specific rule (channel ×
 * category > category > channel), then the tenant's in the same order, else delivered; and the
 * initial state it gives a Send, quiet hours included.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_QUIET_HOURS,
  admit,
  createPreferences,
  decide,
  tenantInForce,
  type PreferenceRule,
  type PreferenceStore,
  type QuietHours,
  type StoredTenantPreferences,
  type TenantPreferences,
} from '../../src/domain/preferences.js';

const rule = (
  channel: PreferenceRule['channel'],
  category: string | null,
  enabled: boolean,
): PreferenceRule => ({ channel, category, enabled });

const tenant = (t: Partial<TenantPreferences> = {}): TenantPreferences => ({
  defaultRules: [],
  requiredCategories: [],
  quietHours: { enabled: false },
  quietHoursDefault: false,
  defaultTimeZone: 'UTC',
  updatedAt: null,
  ...t,
});

describe('decide', () => {
  it('delivers when no rule applies', () => {
    expect(decide('email', 'marketing', [], tenant())).toEqual({ deliver: true });
    expect(decide('email', null, [rule(null, 'marketing', false)], tenant())).toEqual({
      deliver: true,
    });
  });

  it('suppresses on a user opt-out, naming the rule and its source', () => {
    expect(decide('email', 'marketing', [rule('email', 'marketing', false)], tenant())).toEqual({
      deliver: false,
      reason: 'opted out of category "marketing" on email (user preference)',
    });
    expect(decide('sms', 'marketing', [rule(null, 'marketing', false)], tenant())).toEqual({
      deliver: false,
      reason: 'opted out of category "marketing" on every channel (user preference)',
    });
    expect(decide('sms', null, [rule('sms', null, false)], tenant())).toEqual({
      deliver: false,
      reason: 'opted out of sms (user preference)',
    });
  });

  it('lets channel × category win over category, and category over channel', () => {
    const rules = [
      rule('email', null, false),
      rule(null, 'orders', true),
      rule('email', 'orders', false),
    ];
    expect(decide('email', 'orders', rules, tenant()).deliver).toBe(false);
    // Without the pair rule, the category rule (in) beats the channel rule (out).
    expect(decide('email', 'orders', rules.slice(0, 2), tenant()).deliver).toBe(true);
    expect(decide('email', 'news', rules, tenant()).deliver).toBe(false);
    expect(decide('push', 'orders', rules, tenant()).deliver).toBe(true);
  });

  it('lets any user rule win over the tenant defaults', () => {
    const t = tenant({ defaultRules: [rule('email', 'marketing', false)] });
    expect(decide('email', 'marketing', [rule('email', null, true)], t)).toEqual({
      deliver: true,
    });
    expect(decide('email', 'marketing', [], t)).toEqual({
      deliver: false,
      reason: 'opted out of category "marketing" on email (tenant default)',
    });
  });

  it('always delivers a required category, whatever the rules', () => {
    const t = tenant({
      requiredCategories: ['security'],
      defaultRules: [rule(null, 'security', false)],
    });
    const rules = [rule('email', 'security', false), rule('email', null, false)];
    expect(decide('email', 'security', rules, t)).toEqual({ deliver: true });
    expect(decide('email', 'other', rules, t).deliver).toBe(false);
  });
});

describe('admit', () => {
  const night = DEFAULT_QUIET_HOURS; // 22:00–08:00
  const at = new Date('2026-06-16T03:30:00Z'); // 23:30 in New York (EDT)
  const send = {
    channel: 'email' as const,
    category: 'news',
    priority: 'normal' as const,
    sendAt: null,
  };

  it('suppresses before considering quiet hours', () => {
    const a = admit(
      send,
      {
        user: null,
        tenant: tenant({ quietHours: night, defaultRules: [rule(null, 'news', false)] }),
      },
      'America/New_York',
      at,
    );
    expect(a).toEqual({
      status: 'SUPPRESSED',
      sendAt: null,
      statusReason: 'opted out of category "news" on every channel (tenant default)',
    });
  });

  it('defers into the recipient’s morning, else the tenant’s default zone', () => {
    expect(
      admit(send, { user: null, tenant: tenant({ quietHours: night }) }, 'America/New_York', at),
    ).toEqual({
      status: 'SCHEDULED',
      sendAt: new Date('2026-06-16T12:00:00Z'),
      statusReason: 'quiet hours 22:00–08:00 America/New_York',
    });
    // 03:30 UTC is inside the window in UTC too; 04:30 in London (BST).
    const t = tenant({ quietHours: night, defaultTimeZone: 'Europe/London' });
    expect(admit(send, { user: null, tenant: t }, null, at)).toMatchObject({
      sendAt: new Date('2026-06-16T07:00:00Z'),
      statusReason: 'quiet hours 22:00–08:00 Europe/London',
    });
  });

  it('holds back neither critical priority, nor in_app or webhook, nor a user who turned it off', () => {
    const t = tenant({ quietHours: night });
    const zone = 'America/New_York';
    for (const s of [
      { ...send, priority: 'critical' as const },
      { ...send, channel: 'in_app' as const },
      { ...send, channel: 'webhook' as const },
    ]) {
      expect(admit(s, { user: null, tenant: t }, zone, at).status, s.channel).toBe('PENDING');
    }
    const off = {
      userId: 'u',
      rules: [],
      quietHours: { enabled: false as const },
      updatedAt: null,
    };
    expect(admit(send, { user: off, tenant: t }, zone, at).status).toBe('PENDING');
  });

  it('checks quiet hours at send_at and keeps a send_at outside them', () => {
    const t = tenant({ quietHours: night });
    const noon = new Date('2026-06-16T16:00:00Z'); // 12:00 EDT
    expect(
      admit({ ...send, sendAt: noon }, { user: null, tenant: t }, 'America/New_York', at),
    ).toEqual({
      status: 'SCHEDULED',
      sendAt: noon,
      statusReason: null,
    });
    const late = new Date('2026-06-17T03:00:00Z'); // 23:00 EDT
    expect(
      admit({ ...send, sendAt: late }, { user: null, tenant: t }, 'America/New_York', at).sendAt,
    ).toEqual(new Date('2026-06-17T12:00:00Z'));
  });
});

/** An in-memory PreferenceStore holding tenant settings, as the PostgreSQL one stores them. */
function memoryStore() {
  const tenants = new Map<string, StoredTenantPreferences>();
  const store: PreferenceStore = {
    read: (tenantId) =>
      Promise.resolve({
        user: null,
        tenant: tenants.get(tenantId) ?? null,
        recipientTimeZone: null,
      }),
    readTenant: (tenantId) => Promise.resolve(tenants.get(tenantId) ?? null),
    putUser: () => Promise.reject(new Error('not used')),
    putTenant(tenantId, prefs) {
      const stored = { ...prefs, updatedAt: new Date() };
      tenants.set(tenantId, stored);
      return Promise.resolve(stored);
    },
  };
  return { store, tenants };
}

describe('tenant quiet hours', () => {
  const evening: QuietHours = { enabled: true, window: { start: 20 * 60, end: 7 * 60 } };
  const update = { defaultRules: [], requiredCategories: ['security'], defaultTimeZone: '' };

  it('follows the deployment default when the tenant sets none, also after the default changes', async () => {
    const m = memoryStore();
    const before = createPreferences({ store: m.store, defaultQuietHours: DEFAULT_QUIET_HOURS });
    const stored = await before.updateTenant('acme', { ...update, quietHours: null });
    expect(stored).toMatchObject({ quietHours: DEFAULT_QUIET_HOURS, quietHoursDefault: true });
    // Stored as "none", not as a copy of today's default.
    expect(m.tenants.get('acme')?.quietHours).toBeNull();

    // The deployment changes HERALD_DEFAULT_QUIET_HOURS: the tenant's settings and Sends follow.
    for (const defaultQuietHours of [evening, { enabled: false } as const]) {
      const after = createPreferences({ store: m.store, defaultQuietHours });
      expect(await after.getTenant('acme')).toMatchObject({
        quietHours: defaultQuietHours,
        quietHoursDefault: true,
        requiredCategories: ['security'],
      });
      expect((await after.forSend('acme', 'u-1')).tenant.quietHours).toEqual(defaultQuietHours);
    }
  });

  it('keeps the tenant’s own quiet hours, on or off, whatever the default', async () => {
    const m = memoryStore();
    const prefs = createPreferences({ store: m.store, defaultQuietHours: evening });
    const own = await prefs.updateTenant('acme', {
      ...update,
      quietHours: { enabled: true, start: '23:00', end: '06:30' },
    });
    expect(own).toMatchObject({
      quietHours: { enabled: true, window: { start: 23 * 60, end: 6 * 60 + 30 } },
      quietHoursDefault: false,
    });
    await prefs.updateTenant('acme', {
      ...update,
      quietHours: { enabled: false, start: '', end: '' },
    });
    expect((await prefs.forSend('acme', 'u-1')).tenant).toMatchObject({
      quietHours: { enabled: false },
      quietHoursDefault: false,
    });
  });

  it('gives a tenant that stored nothing every default', () => {
    expect(tenantInForce(null, evening)).toEqual({
      defaultRules: [],
      requiredCategories: [],
      quietHours: evening,
      quietHoursDefault: true,
      defaultTimeZone: 'UTC',
      updatedAt: null,
    });
  });

  it('names each bad end of a window with the rule it broke', async () => {
    const prefs = createPreferences({ store: memoryStore().store, defaultQuietHours: evening });
    const bad = (start: string, end: string) =>
      prefs.updateTenant('acme', { ...update, quietHours: { enabled: true, start, end } }).then(
        () => [],
        (e: { violations: { field: string; description: string }[] }) => e.violations,
      );
    expect(await bad('25:00', '7:00')).toEqual([
      {
        field: 'preferences.quiet_hours.start',
        description: 'must be a local time "HH:MM" (00:00 to 23:59)',
      },
      {
        field: 'preferences.quiet_hours.end',
        description: 'must be a local time "HH:MM" (00:00 to 23:59)',
      },
    ]);
    expect(await bad('07:00', '07:00')).toEqual([
      { field: 'preferences.quiet_hours.end', description: 'must differ from start' },
    ]);
  });
});
