/**
 * API keys (`hk_<prefix>_<secret>`: 12 lowercase hex-ish characters of public prefix, 32 random
 * bytes of secret) and the authenticator that turns a credential into a Principal. Only a SHA-256
 * hash of the secret is stored; the secret has 256 bits of entropy, so the hash needs no salt or
 * stretching. Looked-up keys are cached for `cacheMs` (the revocation delay across processes).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  SCOPES,
  type ApiKeyRecord,
  type ApiKeyStore,
  type Authenticator,
  type Scope,
} from '../../domain/access.js';
import { UnauthenticatedError } from '../../domain/errors.js';
import { uuidv7 } from '../../domain/ids.js';

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
