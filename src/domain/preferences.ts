/**
 * Preferences: which notifications a user wants, on which channels, and when not to be disturbed.
 *
 * A rule opts a user in or out of a channel, a category, or a category on one channel. The tenant
 * sets default rules, categories no one may opt out of (e.g. `security`), default quiet hours and
 * a default time zone. Whether a Send is delivered is decided in this order, the first that
 * applies winning:
 *
 * 1. its category is required by the tenant → delivered;
 * 2. the user's rule for the channel × category, then for the category, then for the channel;
 * 3. the tenant's default rule, in the same order;
 * 4. otherwise delivered.
 *
 * A Send that is not delivered is stored SUPPRESSED with the reason. One that is delivered but
 * due inside the recipient's quiet hours is SCHEDULED for the end of them (email, sms and push
 * only: an in-app item disturbs no one until the app is opened, and a webhook reaches a machine),
 * unless its priority is critical.
 */
import { ValidationError, type FieldViolation } from './errors.js';
import { CHANNELS, type Channel, type Priority, type Status } from './notification.js';
import {
  describeWindow,
  formatHhMm,
  parseWindow,
  quietHoursRelease,
  type QuietWindow,
} from './quiet-hours.js';
import { isTimeZone } from './recipients.js';
import { validateCategory, validateUserId, type Bad } from './validation.js';

/** One opt-in or opt-out. A null channel or category means "every". Never both null. */
export interface PreferenceRule {
  channel: Channel | null;
  category: string | null;
  enabled: boolean;
}

/** Quiet hours: a daily window, or off. */
export type QuietHours = { enabled: true; window: QuietWindow } | { enabled: false };

export interface UserPreferences {
  userId: string;
  rules: PreferenceRule[];
  /** The user's own quiet hours; null follows the tenant's. */
  quietHours: QuietHours | null;
  /** Null when the user has never set preferences. */
  updatedAt: Date | null;
}

export interface TenantPreferences {
  defaultRules: PreferenceRule[];
  /** Categories always delivered, whatever the rules say. */
  requiredCategories: string[];
  /** The quiet hours in force: the tenant's own, else the deployment's default. */
  quietHours: QuietHours;
  /**
   * True when the tenant set none of its own: `quietHours` is the deployment's default, and
   * follows it when the deployment changes it.
   */
  quietHoursDefault: boolean;
  /** For recipients without a time zone of their own. */
  defaultTimeZone: string;
  /** Null while the tenant runs on the defaults. */
  updatedAt: Date | null;
}

/** What the store holds of a tenant; what it lacks comes from the defaults. */
export type StoredTenantPreferences = Omit<
  TenantPreferences,
  'quietHours' | 'quietHoursDefault' | 'updatedAt'
> & {
  /** Null: the deployment's default, resolved when read (never copied into the row). */
  quietHours: QuietHours | null;
  updatedAt: Date;
};
export type StoredUserPreferences = UserPreferences & { updatedAt: Date };

/** What a Send needs to be decided: each part null when nothing is stored. */
export interface PreferencesRead {
  user: StoredUserPreferences | null;
  tenant: StoredTenantPreferences | null;
  /** The recipient's time zone (for quiet hours). */
  recipientTimeZone: string | null;
}

export interface PreferenceStore {
  /**
   * The user's preferences, the tenant's settings and the recipient's time zone together, in one
   * round trip.
   */
  read(tenantId: string, userId: string): Promise<PreferencesRead>;
  readTenant(tenantId: string): Promise<StoredTenantPreferences | null>;
  /** Replaces the user's rules and quiet hours; the stored preferences. */
  putUser(
    tenantId: string,
    prefs: Pick<UserPreferences, 'userId' | 'rules' | 'quietHours'>,
  ): Promise<StoredUserPreferences>;
  /** Replaces the tenant's settings; the stored settings. */
  putTenant(
    tenantId: string,
    prefs: Omit<StoredTenantPreferences, 'updatedAt'>,
  ): Promise<StoredTenantPreferences>;
}

/** The channels quiet hours hold back: those that buzz a phone or land in a mailbox. */
export const QUIET_HOURS_CHANNELS: readonly Channel[] = ['email', 'sms', 'push'];
/** Quiet hours when nothing else is configured: 22:00–08:00. */
export const DEFAULT_QUIET_HOURS: QuietHours = {
  enabled: true,
  window: { start: 22 * 60, end: 8 * 60 },
};
export const DEFAULT_TIME_ZONE = 'UTC';
const LIMITS = { rules: 100, requiredCategories: 100 } as const;

/** How the Send path is told the decision: its initial status, due time and reason. */
export interface Admission {
  status: Extract<Status, 'PENDING' | 'SCHEDULED' | 'SUPPRESSED'>;
  sendAt: Date | null;
  statusReason: string | null;
}

/**
 * Delivered or not, and why not (the rule that opted the user out), by the precedence above.
 */
export function decide(
  channel: Channel,
  category: string | null,
  user: readonly PreferenceRule[],
  tenant: Pick<TenantPreferences, 'defaultRules' | 'requiredCategories'>,
): { deliver: true } | { deliver: false; reason: string } {
  if (category !== null && tenant.requiredCategories.includes(category)) return { deliver: true };
  for (const [rules, source] of [
    [user, 'user preference'],
    [tenant.defaultRules, 'tenant default'],
  ] as const) {
    const rule = mostSpecific(rules, channel, category);
    if (rule === null) continue;
    if (rule.enabled) return { deliver: true };
    return { deliver: false, reason: `${describeOptOut(rule, channel)} (${source})` };
  }
  return { deliver: true };
}

function mostSpecific(
  rules: readonly PreferenceRule[],
  channel: Channel,
  category: string | null,
): PreferenceRule | null {
  const find = (ch: Channel | null, cat: string | null) =>
    rules.find((r) => r.channel === ch && r.category === cat) ?? null;
  return (
    (category === null ? null : (find(channel, category) ?? find(null, category))) ??
    find(channel, null)
  );
}

function describeOptOut(rule: PreferenceRule, channel: Channel): string {
  if (rule.category === null) return `opted out of ${channel}`;
  const what = `opted out of category ${JSON.stringify(rule.category)}`;
  return rule.channel === null ? `${what} on every channel` : `${what} on ${channel}`;
}

/** The quiet hours that apply to a user: their own, else the tenant's. */
export function effectiveQuietHours(
  user: Pick<UserPreferences, 'quietHours'> | null,
  tenant: Pick<TenantPreferences, 'quietHours'>,
): QuietHours {
  return user?.quietHours ?? tenant.quietHours;
}

/** True when quiet hours may hold back a Send on this channel with this priority. */
export function quietHoursApply(channel: Channel, priority: Priority): boolean {
  return priority !== 'critical' && QUIET_HOURS_CHANNELS.includes(channel);
}

/**
 * The initial state of a Send: SUPPRESSED (with the opt-out), SCHEDULED (a future send_at, or
 * deferred to the end of quiet hours, with them as the reason) or PENDING.
 */
export function admit(
  send: { channel: Channel; category: string | null; priority: Priority; sendAt: Date | null },
  prefs: { user: UserPreferences | null; tenant: TenantPreferences },
  /** The recipient's own time zone, if known. */
  timeZone: string | null,
  now: Date,
): Admission {
  const d = decide(send.channel, send.category, prefs.user?.rules ?? [], prefs.tenant);
  if (!d.deliver) return { status: 'SUPPRESSED', sendAt: send.sendAt, statusReason: d.reason };
  const quiet = effectiveQuietHours(prefs.user, prefs.tenant);
  if (quiet.enabled && quietHoursApply(send.channel, send.priority)) {
    const zone = timeZone ?? prefs.tenant.defaultTimeZone;
    const release = quietHoursRelease(send.sendAt ?? now, quiet.window, zone);
    if (release !== null) {
      return {
        status: 'SCHEDULED',
        sendAt: release,
        statusReason: `quiet hours ${describeWindow(quiet.window)} ${zone}`,
      };
    }
  }
  return {
    status: send.sendAt === null ? 'PENDING' : 'SCHEDULED',
    sendAt: send.sendAt,
    statusReason: null,
  };
}

/** A rule as the contract carries it: '' for "every" channel or category. */
export interface RuleInput {
  channel: string;
  category: string;
  enabled: boolean;
}

/** Quiet hours as the contract carries them: "HH:MM" local times. */
export interface QuietHoursInput {
  enabled: boolean;
  start: string;
  end: string;
}

export interface UserPreferencesInput {
  userId: string;
  rules: readonly RuleInput[];
  /** Null follows the tenant's. */
  quietHours: QuietHoursInput | null;
}

export interface TenantPreferencesInput {
  defaultRules: readonly RuleInput[];
  requiredCategories: readonly string[];
  /**
   * Null: the deployment's default (22:00–08:00 unless configured otherwise), stored as "none"
   * so the tenant follows a later change of it.
   */
  quietHours: QuietHoursInput | null;
  /** '' means UTC. */
  defaultTimeZone: string;
}

function rulesFrom(rules: readonly RuleInput[], field: string, bad: Bad): PreferenceRule[] {
  if (rules.length > LIMITS.rules) bad(field, `must hold at most ${LIMITS.rules} rules`);
  const seen = new Map<string, number>();
  return rules.map((r, i) => {
    const at = `${field}[${i}]`;
    const channel = r.channel === '' ? null : (r.channel as Channel);
    if (channel !== null && !CHANNELS.includes(channel)) {
      bad(`${at}.channel`, `must be a defined channel or unset (got ${r.channel})`);
    }
    if (r.category !== '') validateCategory(r.category, bad, `${at}.category`);
    if (r.channel === '' && r.category === '') {
      bad(at, 'must name a channel, a category, or both');
    }
    const key = `${r.channel}\u0000${r.category}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else bad(at, `repeats ${field}[${first}] (same channel and category)`);
    return { channel, category: r.category === '' ? null : r.category, enabled: r.enabled };
  });
}

function quietHoursFrom(q: QuietHoursInput, field: string, bad: Bad): QuietHours {
  if (!q.enabled) return { enabled: false };
  const parsed = parseWindow(q.start, q.end);
  if (parsed.ok) return { enabled: true, window: parsed.window };
  if (parsed.start !== undefined) bad(`${field}.start`, parsed.start);
  if (parsed.end !== undefined) bad(`${field}.end`, parsed.end);
  return { enabled: false };
}

/**
 * The tenant's settings in force: what it stored, with the deployment's default quiet hours where
 * it set none (and every default when it stored nothing).
 */
export function tenantInForce(
  stored: StoredTenantPreferences | null,
  defaultQuietHours: QuietHours,
): TenantPreferences {
  if (stored === null) {
    return {
      defaultRules: [],
      requiredCategories: [],
      quietHours: defaultQuietHours,
      quietHoursDefault: true,
      defaultTimeZone: DEFAULT_TIME_ZONE,
      updatedAt: null,
    };
  }
  return {
    ...stored,
    quietHours: stored.quietHours ?? defaultQuietHours,
    quietHoursDefault: stored.quietHours === null,
  };
}

/** "HH:MM" fields of quiet hours, for the contract. */
export function quietHoursOutput(q: QuietHours): QuietHoursInput {
  return q.enabled
    ? { enabled: true, start: formatHhMm(q.window.start), end: formatHhMm(q.window.end) }
    : { enabled: false, start: '', end: '' };
}

export interface PreferencesDeps {
  store: PreferenceStore;
  /** Tenants' quiet hours until they set their own (configuration). */
  defaultQuietHours: QuietHours;
}

export type Preferences = ReturnType<typeof createPreferences>;

export function createPreferences(deps: PreferencesDeps) {
  const { store } = deps;
  const tenantOrDefault = (t: StoredTenantPreferences | null): TenantPreferences =>
    tenantInForce(t, deps.defaultQuietHours);
  const view = (userId: string, user: UserPreferences | null, tenant: TenantPreferences) => ({
    preferences: user ?? { userId, rules: [], quietHours: null, updatedAt: null },
    tenant,
    effectiveQuietHours: effectiveQuietHours(user, tenant),
  });

  return {
    /**
     * What the Send path needs, in one query: the user's preferences, the tenant's settings and
     * the recipient's time zone.
     */
    async forSend(tenantId: string, userId: string) {
      const { user, tenant, recipientTimeZone } = await store.read(tenantId, userId);
      return { user, tenant: tenantOrDefault(tenant), recipientTimeZone };
    },

    /** The user's preferences, with the tenant settings they are decided against. */
    async get(tenantId: string, userId: string) {
      const v: FieldViolation[] = [];
      validateUserId(userId, (field, description) => v.push({ field, description }));
      if (v.length > 0) throw new ValidationError(v);
      const { user, tenant } = await store.read(tenantId, userId);
      return view(userId, user, tenantOrDefault(tenant));
    },

    /** Replaces the user's rules and quiet hours. */
    async update(tenantId: string, input: UserPreferencesInput) {
      const v: FieldViolation[] = [];
      const bad: Bad = (field, description) => v.push({ field, description });
      validateUserId(input.userId, bad, 'user_id');
      const rules = rulesFrom(input.rules, 'preferences.rules', bad);
      const quietHours =
        input.quietHours === null
          ? null
          : quietHoursFrom(input.quietHours, 'preferences.quiet_hours', bad);
      if (v.length > 0) throw new ValidationError(v);
      const user = await store.putUser(tenantId, { userId: input.userId, rules, quietHours });
      return view(input.userId, user, tenantOrDefault(await store.readTenant(tenantId)));
    },

    async getTenant(tenantId: string): Promise<TenantPreferences> {
      return tenantOrDefault(await store.readTenant(tenantId));
    },

    /** Replaces the tenant's settings. */
    async updateTenant(tenantId: string, input: TenantPreferencesInput) {
      const v: FieldViolation[] = [];
      const bad: Bad = (field, description) => v.push({ field, description });
      const defaultRules = rulesFrom(input.defaultRules, 'preferences.default_rules', bad);
      if (input.requiredCategories.length > LIMITS.requiredCategories) {
        bad(
          'preferences.required_categories',
          `must hold at most ${LIMITS.requiredCategories} categories`,
        );
      }
      input.requiredCategories.forEach((c, i) => {
        const at = `preferences.required_categories[${i}]`;
        if (c === '') bad(at, 'must not be empty');
        else validateCategory(c, bad, at);
        if (input.requiredCategories.indexOf(c) !== i) bad(at, 'is a repeat');
      });
      // Unset stays unset: the tenant follows the deployment's default, even when it changes.
      const quietHours =
        input.quietHours === null
          ? null
          : quietHoursFrom(input.quietHours, 'preferences.quiet_hours', bad);
      const zone = input.defaultTimeZone === '' ? DEFAULT_TIME_ZONE : input.defaultTimeZone;
      if (!isTimeZone(zone)) {
        bad('preferences.default_time_zone', 'must be an IANA time zone, e.g. Europe/London');
      }
      if (v.length > 0) throw new ValidationError(v);
      const stored = await store.putTenant(tenantId, {
        defaultRules,
        requiredCategories: [...input.requiredCategories],
        quietHours,
        defaultTimeZone: zone,
      });
      return tenantOrDefault(stored);
    },
  };
}
