/**
 * RecipientStore on PostgreSQL: `recipient` rows and their `push_token` rows (deleted with them).
 */
import type pg from 'pg';
import type { Recipient, RecipientStore } from '../../domain/recipients.js';
import { createBatcher } from './batcher.js';
import { json } from './columns.js';

interface Row {
  tenant_id: string;
  user_id: string;
  email: string | null;
  phone: string | null;
  time_zone: string | null;
  locale: string | null;
  data: Record<string, string> | string;
  created_at: Date | string;
  updated_at: Date | string;
  tokens: { token: string; registered_at: string }[] | string | null;
}

/** The recipient with its tokens, newest first, in one statement. */
const SELECT = `
  select r.*, (
    select json_agg(json_build_object('token', t.token, 'registered_at', t.registered_at)
                    order by t.registered_at desc)
    from push_token t where t.tenant_id = r.tenant_id and t.user_id = r.user_id
  ) as tokens
  from recipient r`;

export function createRecipientStore(pool: pg.Pool): RecipientStore {
  // Sends without a direct address read their recipient: concurrent reads (a SendBatch, a busy
  // api) share one statement instead of a round trip each.
  const getOne = createBatcher<{ tenantId: string; userId: string }, Recipient | null>(
    async (keys) => {
      const { rows } = await pool.query<Row & { ord: string }>({
        name: 'herald_recipient_get',
        text: `select k.ord, x.*
          from unnest($1::text[], $2::text[]) with ordinality as k(tenant_id, user_id, ord)
          join lateral (${SELECT} where r.tenant_id = k.tenant_id and r.user_id = k.user_id) x
            on true`,
        values: [keys.map((k) => k.tenantId), keys.map((k) => k.userId)],
      });
      const byOrd = new Map(rows.map((r) => [Number(r.ord), r]));
      return keys.map((_, i) => {
        const row = byOrd.get(i + 1);
        return row ? toRecipient(row) : null;
      });
    },
    { maxSize: 200, maxConcurrent: 2 },
  );
  const get = (tenantId: string, userId: string) => getOne({ tenantId, userId });
  const ensure = (tenantId: string, userId: string) =>
    pool.query(
      `insert into recipient (tenant_id, user_id, created_at, updated_at)
       values ($1, $2, now(), now()) on conflict do nothing`,
      [tenantId, userId],
    );

  return {
    get,
    async upsert(tenantId, f) {
      await pool.query(
        `insert into recipient (tenant_id, user_id, email, phone, time_zone, locale, data,
           created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, now(), now())
         on conflict (tenant_id, user_id) do update set email = excluded.email,
           phone = excluded.phone, time_zone = excluded.time_zone, locale = excluded.locale,
           data = excluded.data, updated_at = now()`,
        [tenantId, f.userId, f.email, f.phone, f.timeZone, f.locale, JSON.stringify(f.data)],
      );
      return (await get(tenantId, f.userId)) as Recipient;
    },
    async delete(tenantId, userId) {
      const { rowCount } = await pool.query(
        'delete from recipient where tenant_id = $1 and user_id = $2',
        [tenantId, userId],
      );
      return (rowCount ?? 0) > 0;
    },
    async registerPushToken(tenantId, userId, token) {
      await ensure(tenantId, userId);
      // A token belongs to one device, so to one user: registering it moves it.
      await pool.query(
        `insert into push_token (tenant_id, user_id, token, registered_at)
         values ($1, $2, $3, now())
         on conflict (tenant_id, token) do update set user_id = excluded.user_id,
           registered_at = now()`,
        [tenantId, userId, token],
      );
      return (await get(tenantId, userId)) as Recipient;
    },
    async removePushToken(tenantId, userId, token) {
      const { rowCount } = await pool.query(
        'delete from push_token where tenant_id = $1 and user_id = $2 and token = $3',
        [tenantId, userId, token],
      );
      return (rowCount ?? 0) > 0;
    },
  };
}

function toRecipient(r: Row): Recipient {
  const tokens = r.tokens === null ? [] : json(r.tokens);
  return {
    tenantId: r.tenant_id,
    userId: r.user_id,
    email: r.email,
    phone: r.phone,
    timeZone: r.time_zone,
    locale: r.locale,
    data: json(r.data),
    pushTokens: tokens.map((t) => ({ token: t.token, registeredAt: new Date(t.registered_at) })),
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}
