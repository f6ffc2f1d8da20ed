/**
 * The delivery decision: required categories, then the user's most specific rule (channel ×
 * category > category > channel), then the tenant's in the same order, else delivered; and the
 * initial state it gives a Send, quiet hours included.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_QUIET_HOURS,
  admit,
  decide,
  type PreferenceRule,
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
