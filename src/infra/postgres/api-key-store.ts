/**
 * ApiKeyStore on PostgreSQL: tenants and API keys (prefix and secret hash, never the secret).
 */
import type pg from 'pg';
import type { ApiKeyRecord, ApiKeyStore, Scope } from '../../domain/access.js';

interface Row {
  id: string;
  tenant_id: string;
  prefix: string;
  secret_hash: string;
  name: string;
  scopes: string[];
  created_at: Date | string;
  revoked_at: Date | string | null;
}

const COLUMNS = 'id, tenant_id, prefix, secret_hash, name, scopes, created_at, revoked_at';

export function createApiKeyStore(pool: pg.Pool): ApiKeyStore {
  return {
    async ensureTenant(id, name) {
      await pool.query(
        'insert into tenant (id, name) values ($1, $2) on conflict (id) do nothing',
        [id, name],
      );
    },
    async insert(k) {
      await pool.query(
        `insert into api_key (id, tenant_id, prefix, secret_hash, name, scopes, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)`,
        [k.id, k.tenantId, k.prefix, k.secretHash, k.name, k.scopes, k.createdAt],
      );
    },
    async findByPrefix(prefix) {
      const { rows } = await pool.query<Row>(
        {
          name: 'herald_api_key_by_prefix',
          text: `select ${COLUMNS} from api_key where prefix = $1`,
        },
        [prefix],
      );
      return rows[0] ? toRecord(rows[0]) : null;
    },
    async list(tenantId, includeRevoked) {
      const { rows } = await pool.query<Row>(
        `select ${COLUMNS} from api_key where tenant_id = $1 and ($2 or revoked_at is null)
         order by created_at desc, id desc`,
        [tenantId, includeRevoked],
      );
      return rows.map(toRecord);
    },
    async revoke(tenantId, id) {
      const { rows } = await pool.query<Row>(
        `update api_key set revoked_at = coalesce(revoked_at, now())
         where tenant_id = $1 and id = $2 returning ${COLUMNS}`,
        [tenantId, id],
      );
      return rows[0] ? toRecord(rows[0]) : null;
    },
    async countActive(tenantId) {
      const { rows } = await pool.query<{ n: string }>(
        'select count(*) as n from api_key where tenant_id = $1 and revoked_at is null',
        [tenantId],
      );
      return Number(rows[0]?.n ?? 0);
    },
  };
}

function toRecord(r: Row): ApiKeyRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    prefix: r.prefix,
    secretHash: r.secret_hash,
    name: r.name,
    scopes: r.scopes as Scope[],
    createdAt: new Date(r.created_at),
    revokedAt: r.revoked_at === null ? null : new Date(r.revoked_at),
  };
}
