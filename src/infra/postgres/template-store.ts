/**
 * TemplateStore on PostgreSQL: a `template` row per id (latest version, archive state) and an
 * immutable `template_version` row per version, whose variables and locale parts are jsonb in the
 * domain's own shape.
 */
import type pg from 'pg';
import { createBatcher } from './batcher.js';
import type {
  TemplateFields,
  TemplateParts,
  TemplateSendLookup,
  TemplateStore,
  TemplateVariable,
  TemplateVersion,
} from '../../domain/templates.js';
import { date, json } from './columns.js';

interface Row {
  id: string;
  latest_version: number;
  created_at: Date | string;
  archived_at: Date | string | null;
  version: number;
  description: string;
  default_locale: string;
  variables: TemplateVariable[] | string;
  locales: Record<string, TemplateParts> | string;
  version_created_at: Date | string;
}

const SELECT = `
  select t.id, t.latest_version, t.created_at, t.archived_at, v.version, v.description,
         v.default_locale, v.variables, v.locales, v.created_at as version_created_at
  from template t
  join template_version v on v.tenant_id = t.tenant_id and v.template_id = t.id`;

function toTemplate(r: Row): TemplateVersion {
  return {
    id: r.id,
    version: r.version,
    latestVersion: r.latest_version,
    description: r.description,
    defaultLocale: r.default_locale,
    variables: json(r.variables),
    locales: json(r.locales),
    createdAt: date(r.created_at),
    versionCreatedAt: date(r.version_created_at),
    archivedAt: r.archived_at === null ? null : date(r.archived_at),
  };
}

/** The parameters of a version's body: description, default locale, variables, locales. */
const body = (f: TemplateFields) => [
  f.description,
  f.defaultLocale,
  JSON.stringify(f.variables),
  JSON.stringify(f.locales),
];

interface SendKey {
  tenantId: string;
  id: string;
  version: number | null;
  cached: readonly number[];
}

interface SendRow {
  ord: string;
  found: boolean;
  version: number | null;
  archived: boolean;
  body: {
    description: string;
    default_locale: string;
    variables: TemplateVariable[];
    locales: Record<string, TemplateParts>;
  } | null;
}

export function createTemplateStore(pool: pg.Pool): TemplateStore {
  // Every Send by template looks its template up: concurrent Sends share one statement, and
  // identical lookups (a SendBatch on one template) one row of it.
  const lookUp = createBatcher<SendKey, TemplateSendLookup | null>(
    async (keys) => {
      const distinct = new Map<string, number>();
      const keyOf = (k: SendKey) => JSON.stringify([k.tenantId, k.id, k.version, k.cached]);
      const unique: SendKey[] = [];
      for (const k of keys) {
        if (distinct.has(keyOf(k))) continue;
        distinct.set(keyOf(k), unique.length);
        unique.push(k);
      }
      const { rows } = await pool.query<SendRow>({
        name: 'herald_template_for_send',
        text: `select k.ord, t.id is not null as found, v.version,
                 t.archived_at is not null as archived,
                 case when v.version is null or v.version = any(k.cached::int[]) then null
                      else json_build_object('description', v.description,
                        'default_locale', v.default_locale, 'variables', v.variables,
                        'locales', v.locales) end as body
               from unnest($1::text[], $2::text[], $3::int[], $4::text[])
                 with ordinality as k(tenant_id, id, version, cached, ord)
               left join template t on t.tenant_id = k.tenant_id and t.id = k.id
               left join template_version v on v.tenant_id = t.tenant_id and v.template_id = t.id
                 and v.version = coalesce(k.version, t.latest_version)`,
        values: [
          unique.map((k) => k.tenantId),
          unique.map((k) => k.id),
          unique.map((k) => k.version),
          // Array literals of integers, cast per row (a two-dimensional array must be rectangular).
          unique.map((k) => `{${k.cached.join(',')}}`),
        ],
      });
      const byOrd = new Map(rows.map((r) => [Number(r.ord), r]));
      const results = unique.map((k, i) => toLookup(k, byOrd.get(i + 1)));
      return keys.map((k) => results[distinct.get(keyOf(k)) ?? -1] ?? null);
    },
    { maxSize: 200, maxConcurrent: 2 },
  );

  async function get(tenantId: string, id: string, version: number | null) {
    const { rows } = await pool.query<Row>(
      `${SELECT} where t.tenant_id = $1 and t.id = $2
         and v.version = coalesce($3::int, t.latest_version)`,
      [tenantId, id, version],
    );
    return rows[0] ? toTemplate(rows[0]) : null;
  }

  return {
    get,

    async create(tenantId, f) {
      // One statement: the version is inserted only if the id was free.
      const { rowCount } = await pool.query(
        `with t as (
           insert into template (tenant_id, id, latest_version, created_at, updated_at)
           values ($1, $2, 1, now(), now())
           on conflict do nothing
           returning tenant_id, id, created_at)
         insert into template_version (tenant_id, template_id, version, description,
           default_locale, variables, locales, created_at)
         select t.tenant_id, t.id, 1, $3, $4, $5, $6, t.created_at from t`,
        [tenantId, f.id, ...body(f)],
      );
      return rowCount === 0 ? null : get(tenantId, f.id, 1);
    },

    async addVersion(tenantId, f, expectedVersion) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        // The row lock orders concurrent updates: each one sees the version the previous made.
        const { rows } = await client.query<{ latest_version: number; archived: boolean }>(
          `select latest_version, archived_at is not null as archived from template
           where tenant_id = $1 and id = $2 for update`,
          [tenantId, f.id],
        );
        const cur = rows[0];
        const refuse = (reason: 'not_found' | 'archived' | 'conflict') => ({
          ok: false as const,
          reason,
          latestVersion: cur?.latest_version ?? 0,
        });
        let refused: ReturnType<typeof refuse> | null = null;
        if (cur === undefined) refused = refuse('not_found');
        else if (cur.archived) refused = refuse('archived');
        else if (expectedVersion !== null && cur.latest_version !== expectedVersion)
          refused = refuse('conflict');
        if (refused !== null || cur === undefined) {
          await client.query('rollback');
          return refused ?? refuse('not_found');
        }
        const next = cur.latest_version + 1;
        await client.query(
          `update template set latest_version = $3, updated_at = now()
           where tenant_id = $1 and id = $2`,
          [tenantId, f.id, next],
        );
        await client.query(
          `insert into template_version (tenant_id, template_id, version, description,
             default_locale, variables, locales, created_at)
           values ($1, $2, $3, $4, $5, $6, $7, now())`,
          [tenantId, f.id, next, ...body(f)],
        );
        await client.query('commit');
        return { ok: true, template: (await get(tenantId, f.id, next)) as TemplateVersion };
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },

    async list(tenantId, q) {
      const { rows } = await pool.query<Row>(
        `${SELECT} and v.version = t.latest_version
         where t.tenant_id = $1 and ($2::text is null or t.id > $2)
           and ($3::boolean or t.archived_at is null)
         order by t.id
         limit $4`,
        [tenantId, q.afterId, q.includeArchived, q.limit],
      );
      return rows.map(toTemplate);
    },

    async archive(tenantId, id) {
      const { rowCount } = await pool.query(
        `update template set archived_at = coalesce(archived_at, now()),
           updated_at = case when archived_at is null then now() else updated_at end
         where tenant_id = $1 and id = $2`,
        [tenantId, id],
      );
      return rowCount === 0 ? null : get(tenantId, id, null);
    },

    forSend: (tenantId, id, version, cached) => lookUp({ tenantId, id, version, cached }),
  };
}

function toLookup(k: SendKey, r: SendRow | undefined): TemplateSendLookup | null {
  if (r === undefined || !r.found) return null;
  const b = r.body === null ? null : json(r.body);
  return {
    version: r.version ?? k.version ?? 0,
    archived: r.archived,
    versionExists: r.version !== null,
    fields:
      b === null
        ? null
        : {
            id: k.id,
            description: b.description,
            defaultLocale: b.default_locale,
            variables: b.variables,
            locales: b.locales,
          },
  };
}
