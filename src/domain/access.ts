/**
 * Who may do what. A caller is a Principal of one tenant: an API key with scopes (services), or a
 * user token (frontends: read and watch the user's own notifications only). Keys look like
 * `hk_<prefix>_<secret>`; the store keeps the prefix and a SHA-256 hash of the secret, so a key is
 * shown once, at creation, and a database dump holds nothing usable (infra/auth/api-keys.ts makes
 * and checks them).
 */
import {
  NotFoundError,
  PermissionDeniedError,
  ValidationError,
  type FieldViolation,
} from './errors.js';
import { isUuid } from './ids.js';
import { hasControlCharacters } from './validation.js';

export const SCOPES = ['send', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  tenantId: string;
  kind: 'api_key' | 'user' | 'development';
  /** The API key's id (kind api_key). */
  keyId: string | null;
  /** The user a user token speaks for (kind user): it sees only this user's notifications. */
  userId: string | null;
  scopes: readonly Scope[];
}

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  /** `hk_<prefix>`: the public part. */
  prefix: string;
  secretHash: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
}

export interface ApiKeyStore {
  /** Creates the tenant unless it exists. */
  ensureTenant(id: string, name: string): Promise<void>;
  insert(key: ApiKeyRecord): Promise<void>;
  findByPrefix(prefix: string): Promise<ApiKeyRecord | null>;
  list(tenantId: string, includeRevoked: boolean): Promise<ApiKeyRecord[]>;
  /** Sets revoked_at unless already set; the key as it is now, or null when not the tenant's. */
  revoke(tenantId: string, id: string): Promise<ApiKeyRecord | null>;
  countActive(tenantId: string): Promise<number>;
}

/**
 * Whether the caller may read stored data it did not write itself: a key with the `read` scope,
 * or a user token (confined to its own user by the services).
 */
export function mayRead(p: Principal): boolean {
  return p.kind === 'user' || p.scopes.includes('read');
}

/** Throws PermissionDenied unless the principal holds `scope`. */
export function requireScope(p: Principal, scope: Scope, what: string): void {
  if (!p.scopes.includes(scope)) {
    throw new PermissionDeniedError(`${what} needs the ${scope} scope`);
  }
}

export interface Authenticator {
  /** The caller behind an `authorization` header value (or null when absent). */
  authenticate(authorization: string | null): Promise<Principal>;
  /** Forgets a cached key at once (after a revoke in this process). */
  forget(prefix: string): void;
}

/** Makes a new key: the whole key to show once, and the record to store. */
export type NewApiKey = (
  tenantId: string,
  name: string,
  scopes: readonly Scope[],
) => { apiKey: string; record: ApiKeyRecord };

/** The AdminService use cases for the caller's tenant. */
export function createApiKeys(deps: {
  store: ApiKeyStore;
  newApiKey: NewApiKey;
  /** Told the prefix of each revoked key (the authenticator drops it from its cache). */
  onRevoked?: (prefix: string) => void;
}) {
  return {
    async create(tenantId: string, name: string, scopes: readonly string[]) {
      const bad: FieldViolation[] = [];
      if (name.trim() === '' || name.length > 128) {
        bad.push({ field: 'name', description: 'must be 1 to 128 characters' });
      } else if (hasControlCharacters(name)) {
        bad.push({ field: 'name', description: 'must not contain control characters' });
      }
      if (scopes.length === 0) bad.push({ field: 'scopes', description: 'at least one scope' });
      scopes.forEach((s, i) => {
        if (!(SCOPES as readonly string[]).includes(s)) {
          bad.push({ field: `scopes[${i}]`, description: `must be one of ${SCOPES.join(', ')}` });
        } else if (scopes.indexOf(s) !== i) {
          bad.push({ field: `scopes[${i}]`, description: 'is a repeat' });
        }
      });
      if (bad.length > 0) throw new ValidationError(bad);
      const created = deps.newApiKey(tenantId, name, scopes as Scope[]);
      await deps.store.insert(created.record);
      return created;
    },
    list: (tenantId: string, includeRevoked: boolean) => deps.store.list(tenantId, includeRevoked),
    async revoke(tenantId: string, id: string) {
      if (!isUuid(id)) throw new ValidationError([{ field: 'id', description: 'must be a UUID' }]);
      const record = await deps.store.revoke(tenantId, id);
      if (record === null) throw new NotFoundError(`API key ${id}`);
      deps.onRevoked?.(record.prefix);
      return record;
    },
  };
}

export type ApiKeys = ReturnType<typeof createApiKeys>;
