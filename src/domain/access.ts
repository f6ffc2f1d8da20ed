/**
 * Who may do what. A caller is a Principal of one tenant: an API key with scopes (services), or a
 * user token (frontends: read and watch the user's own notifications only). Keys look like
 * `hk_<prefix>_<secret>`; the store keeps the prefix and a SHA-256 hash of the secret, so a key is
 * shown once, at creation, and a database dump holds nothing usable.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isUuid, uuidv7 } from './ids.js';
import {
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  ValidationError,
  type FieldViolation,
} from './errors.js';

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

const KEY_PATTERN = /^hk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

/** A new key: the whole key to show once, and the record to store. */
export function newApiKey(
  tenantId: string,
  name: string,
  scopes: readonly Scope[],
  now: Date = new Date(),
): { apiKey: string; record: ApiKeyRecord } {
  const prefix = `hk_${randomBytes(8).toString('hex').slice(0, 12)}`;
  const secret = randomBytes(32).toString('base64url');
  return {
    apiKey: `${prefix}_${secret}`,
    record: {
      id: uuidv7(now.getTime()),
      tenantId,
      prefix,
      secretHash: hashSecret(secret),
      name,
      scopes: [...scopes],
      createdAt: now,
      revokedAt: null,
    },
  };
}

/** `{ prefix: 'hk_<prefix>', secret }`, or null when the string is not shaped like a key. */
export function parseApiKey(key: string): { prefix: string; secret: string } | null {
  const m = KEY_PATTERN.exec(key);
  return m ? { prefix: `hk_${m[1]}`, secret: m[2] as string } : null;
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Throws PermissionDenied unless the principal holds `scope`. */
export function requireScope(p: Principal, scope: Scope, what: string): void {
  if (!p.scopes.includes(scope)) {
    throw new PermissionDeniedError(`${what} needs the ${scope} scope`);
  }
}

export interface AuthenticatorOptions {
  keys: ApiKeyStore;
  /** Verifies a user token (a JWT); throws UnauthenticatedError. */
  verifyUserToken: (token: string) => { tenantId: string; userId: string };
  /** How long a looked-up key is trusted before it is read again (revocation delay), ms. */
  cacheMs: number;
  /** Authentication off (development and tests only): every caller is this tenant, all scopes. */
  disabledForTenant: string | null;
  now?: () => number;
}

export interface Authenticator {
  /** The caller behind an `authorization` header value (or null when absent). */
  authenticate(authorization: string | null): Promise<Principal>;
  /** Forgets a cached key at once (after a revoke in this process). */
  forget(prefix: string): void;
}

export function createAuthenticator(o: AuthenticatorOptions): Authenticator {
  const now = o.now ?? Date.now;
  const cache = new Map<string, { record: ApiKeyRecord | null; at: number }>();

  async function lookup(prefix: string): Promise<ApiKeyRecord | null> {
    const hit = cache.get(prefix);
    if (hit && now() - hit.at < o.cacheMs) return hit.record;
    const record = await o.keys.findByPrefix(prefix);
    if (cache.size > 10_000) cache.clear(); // garbage prefixes must not grow it without bound
    cache.set(prefix, { record, at: now() });
    return record;
  }

  return {
    async authenticate(authorization) {
      if (o.disabledForTenant !== null) {
        return {
          tenantId: o.disabledForTenant,
          kind: 'development',
          keyId: null,
          userId: null,
          scopes: SCOPES,
        };
      }
      if (authorization === null || authorization.trim() === '') {
        throw new UnauthenticatedError(
          'missing credentials: send "authorization: Bearer <API key or user token>"',
        );
      }
      const m = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
      if (!m)
        throw new UnauthenticatedError('the authorization header must be "Bearer <credential>"');
      const credential = m[1] as string;
      const key = parseApiKey(credential);
      if (key === null) {
        if (credential.startsWith('hk_')) throw new UnauthenticatedError('malformed API key');
        const user = o.verifyUserToken(credential);
        return {
          tenantId: user.tenantId,
          kind: 'user',
          keyId: null,
          userId: user.userId,
          scopes: ['read'],
        };
      }
      const record = await lookup(key.prefix);
      if (record === null || !secretMatches(key.secret, record.secretHash)) {
        throw new UnauthenticatedError('unknown API key');
      }
      if (record.revokedAt !== null) throw new UnauthenticatedError('the API key is revoked');
      return {
        tenantId: record.tenantId,
        kind: 'api_key',
        keyId: record.id,
        userId: null,
        scopes: record.scopes,
      };
    },
    forget(prefix) {
      cache.delete(prefix);
    },
  };
}

/** The AdminService use cases for the caller's tenant. */
export function createApiKeys(deps: { store: ApiKeyStore; authenticator: Authenticator }) {
  return {
    async create(tenantId: string, name: string, scopes: readonly string[]) {
      const bad: FieldViolation[] = [];
      if (name.trim() === '' || name.length > 128) {
        bad.push({ field: 'name', description: 'must be 1 to 128 characters' });
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
      const created = newApiKey(tenantId, name, scopes as Scope[]);
      await deps.store.insert(created.record);
      return created;
    },
    list: (tenantId: string, includeRevoked: boolean) => deps.store.list(tenantId, includeRevoked),
    async revoke(tenantId: string, id: string) {
      const record = isUuid(id) ? await deps.store.revoke(tenantId, id) : null;
      if (record === null) throw new NotFoundError(`API key ${id}`);
      deps.authenticator.forget(record.prefix);
      return record;
    },
  };
}

export type ApiKeys = ReturnType<typeof createApiKeys>;
