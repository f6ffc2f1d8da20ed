/**
 * PreferenceStore on PostgreSQL: one `user_preference` row per user (rules as jsonb, the quiet-hours
 * override as columns) and one `tenant_settings` row per tenant. The Send path reads both in one
 * prepared statement.
 */
import type pg from 'pg';
import { createBatcher } from './batcher.js';
import type { Channel } from '../../domain/notification.js';
import type {
  PreferenceRule,
  PreferencesRead,
  PreferenceStore,
  QuietHours,
  StoredTenantPreferences,
  StoredUserPreferences,
} from '../../domain/preferences.js';
import { json } from './columns.js';

interface StoredRule {
  channel: string | null;
  category: string | null;
  enabled: boolean;
}

interface Row {
  u_user_id: string | null;
  u_rules: StoredRule[] | string | null;
  u_quiet_enabled: boolean | null;
  u_quiet_start: number | null;
  u_quiet_end: number | null;
  u_updated_at: Date | string | null;
  t_tenant_id: string | null;
  t_default_rules: StoredRule[] | string | null;
  t_required_categories: string[] | null;
  t_quiet_enabled: boolean | null;
  t_quiet_start: number | null;
  t_quiet_end: number | null;
  t_default_time_zone: string | null;
  t_updated_at: Date | string | null;
  r_time_zone: string | null;
}

const USER_COLUMNS = `u.user_id as u_user_id, u.rules as u_rules,
  u.quiet_enabled as u_quiet_enabled, u.quiet_start as u_quiet_start,
  u.quiet_end as u_quiet_end, u.updated_at as u_updated_at`;
const TENANT_COLUMNS = `t.tenant_id as t_tenant_id, t.default_rules as t_default_rules,
  t.required_categories as t_required_categories, t.quiet_enabled as t_quiet_enabled,
  t.quiet_start as t_quiet_start, t.quiet_end as t_quiet_end,
  t.default_time_zone as t_default_time_zone, t.updated_at as t_updated_at`;

export function createPreferenceStore(pool: pg.Pool): PreferenceStore {
  // Every Send reads these: concurrent Sends share one statement (a row per Send, in order) instead
  // of a round trip each. Any of the rows may be missing: each is left-joined to the key.
  const readOne = createBatcher<{ tenantId: string; userId: string }, PreferencesRead>(
    async (keys) => {
      const { rows } = await pool.query<Row & { ord: string }>({
        name: 'herald_preferences_for_send',
        text: `select k.ord, ${USER_COLUMNS}, ${TENANT_COLUMNS}, r.time_zone as r_time_zone
          from unnest($1::text[], $2::text[]) with ordinality as k(tenant_id, user_id, ord)
          left join user_preference u on u.tenant_id = k.tenant_id and u.user_id = k.user_id
          left join tenant_settings t on t.tenant_id = k.tenant_id
          left join recipient r on r.tenant_id = k.tenant_id and r.user_id = k.user_id`,
        values: [keys.map((k) => k.tenantId), keys.map((k) => k.userId)],
      });
      const byOrd = new Map(rows.map((r) => [Number(r.ord), r]));
      return keys.map((_, i) => {
        const row = byOrd.get(i + 1);
        return {
          user: row ? toUser(row) : null,
          tenant: row ? toTenant(row) : null,
          recipientTimeZone: row?.r_time_zone ?? null,
        };
      });
    },
    { maxSize: 200, maxConcurrent: 2 },
  );

  async function readTenant(tenantId: string) {
    const { rows } = await pool.query<Row>(
      `select ${TENANT_COLUMNS} from tenant_settings t where t.tenant_id = $1`,
      [tenantId],
    );
    return rows[0] ? toTenant(rows[0]) : null;
  }

  return {
    read: (tenantId, userId) => readOne({ tenantId, userId }),

    readTenant,

    async putUser(tenantId, p) {
      const q = quietColumns(p.quietHours);
      const { rows } = await pool.query<Row>(
        `insert into user_preference as u (tenant_id, user_id, rules, quiet_enabled, quiet_start,
           quiet_end, updated_at)
         values ($1, $2, $3, $4, $5, $6, now())
         on conflict (tenant_id, user_id) do update set rules = excluded.rules,
           quiet_enabled = excluded.quiet_enabled, quiet_start = excluded.quiet_start,
           quiet_end = excluded.quiet_end, updated_at = now()
         returning ${USER_COLUMNS}`,
        [tenantId, p.userId, JSON.stringify(p.rules), q.enabled, q.start, q.end],
      );
      return toUser(rows[0] as Row) as StoredUserPreferences;
    },

    async putTenant(tenantId, p) {
      const q = quietColumns(p.quietHours);
      const { rows } = await pool.query<Row>(
        `insert into tenant_settings as t (tenant_id, default_rules, required_categories,
           quiet_enabled, quiet_start, quiet_end, default_time_zone, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, now())
         on conflict (tenant_id) do update set default_rules = excluded.default_rules,
           required_categories = excluded.required_categories,
           quiet_enabled = excluded.quiet_enabled, quiet_start = excluded.quiet_start,
           quiet_end = excluded.quiet_end, default_time_zone = excluded.default_time_zone,
           updated_at = now()
         returning ${TENANT_COLUMNS}`,
        [
          tenantId,
          JSON.stringify(p.defaultRules),
          p.requiredCategories,
          q.enabled,
          q.start,
          q.end,
          p.defaultTimeZone,
        ],
      );
      return toTenant(rows[0] as Row) as StoredTenantPreferences;
    },
  };
}

function quietColumns(q: QuietHours | null) {
  if (q === null) return { enabled: null, start: null, end: null };
  return q.enabled
    ? { enabled: true, start: q.window.start, end: q.window.end }
    : { enabled: false, start: null, end: null };
}

function quietFrom(enabled: boolean, start: number | null, end: number | null): QuietHours {
  return enabled && start !== null && end !== null
    ? { enabled: true, window: { start, end } }
    : { enabled: false };
}

function rulesFrom(v: StoredRule[] | string | null): PreferenceRule[] {
  return (v === null ? [] : json(v)).map((r) => ({
    channel: r.channel as Channel | null,
    category: r.category,
    enabled: r.enabled,
  }));
}

function toUser(r: Row): StoredUserPreferences | null {
  if (r.u_user_id === null || r.u_updated_at === null) return null;
  return {
    userId: r.u_user_id,
    rules: rulesFrom(r.u_rules),
    quietHours:
      r.u_quiet_enabled === null
        ? null
        : quietFrom(r.u_quiet_enabled, r.u_quiet_start, r.u_quiet_end),
    updatedAt: new Date(r.u_updated_at),
  };
}

function toTenant(r: Row): StoredTenantPreferences | null {
  if (r.t_tenant_id === null || r.t_updated_at === null) return null;
  return {
    defaultRules: rulesFrom(r.t_default_rules),
    requiredCategories: r.t_required_categories ?? [],
    quietHours:
      r.t_quiet_enabled === null
        ? null
        : quietFrom(r.t_quiet_enabled, r.t_quiet_start, r.t_quiet_end),
    defaultTimeZone: r.t_default_time_zone ?? 'UTC',
    updatedAt: new Date(r.t_updated_at),
  };
}
