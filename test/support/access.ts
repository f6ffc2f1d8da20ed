/** API keys for tests: made straight in the test database, as `herald keys create` would. */
import type pg from 'pg';
import type { Scope } from '../../src/domain/access.js';
import { newApiKey } from '../../src/infra/auth/api-keys.js';
import { createApiKeyStore } from '../../src/infra/postgres/api-key-store.js';

/** Creates the tenant if needed and a key with `scopes`; returns the whole key. */
export async function createTestApiKey(
  pool: pg.Pool,
  tenant: string,
  scopes: Scope[],
  name = `test ${scopes.join(',')}`,
): Promise<string> {
  const store = createApiKeyStore(pool);
  await store.ensureTenant(tenant, tenant);
  const { apiKey, record } = newApiKey(tenant, name, scopes);
  await store.insert(record);
  return apiKey;
}
