/**
 * User tokens for frontends: short-lived HS256 JWTs that let one user of one tenant read and watch
 * their own notifications. Each tenant's signing secret is derived from the deployment's master
 * secret (HERALD_TOKEN_SECRET) rather than stored, so there is nothing per tenant to leak from the
 * database, and rotating the master invalidates every token at once.
 *
 * Verification accepts exactly what issueUserToken produces and nothing looser: one algorithm, no
 * key-selection headers, canonical base64url, and a bounded lifetime.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { UnauthenticatedError, ValidationError, type FieldViolation } from '../../domain/errors.js';
import { validateUserId } from '../../domain/validation.js';

/** The longest lifetime a token may have (`exp − iat`), in seconds, unless the verifier says less. */
export const MAX_USER_TOKEN_TTL_SECONDS = 86_400;

/** Tokens longer than this are rejected before any parsing: ours are a few hundred bytes. */
export const MAX_USER_TOKEN_LENGTH = 4096;

/** The master secret's minimum length, as config enforces for HERALD_TOKEN_SECRET. */
export const MIN_MASTER_SECRET_LENGTH = 32;

const DERIVATION_PREFIX = 'herald-user-token:';
const HEADER = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
const ALLOWED_HEADER_PARAMS = new Set(['alg', 'typ']);
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
// Invalid UTF-8 must fail, not turn into U+FFFD and parse.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The tenant's signing secret: HMAC-SHA256(master, 'herald-user-token:' + tenantId). Backends that
 * mint their own tokens compute the same value; it is never stored.
 */
export function tenantTokenSecret(master: string, tenantId: string): Buffer {
  // A configuration error, not the caller's: let it surface as an internal error.
  if (master.length < MIN_MASTER_SECRET_LENGTH) {
    throw new RangeError(
      `the token master secret must be at least ${MIN_MASTER_SECRET_LENGTH} characters`,
    );
  }
  return createHmac('sha256', master)
    .update(DERIVATION_PREFIX + tenantId)
    .digest();
}

export interface IssueUserTokenOptions {
  /** The master secret (HERALD_TOKEN_SECRET). */
  master: string;
  tenantId: string;
  /** The user the token speaks for; becomes `sub`. */
  userId: string;
  /** Lifetime; 1 to MAX_USER_TOKEN_TTL_SECONDS. Default 900 (15 minutes). */
  ttlSeconds?: number;
  issuer?: string;
  audience?: string;
  /** Milliseconds since the epoch. */
  now?: number;
}

/** Mints a user token. Throws ValidationError for an unusable tenant id, user id or lifetime. */
export function issueUserToken(options: IssueUserTokenOptions): string {
  const {
    master,
    tenantId,
    userId,
    ttlSeconds = 900,
    issuer = 'herald',
    audience = 'herald-api',
    now = Date.now(),
  } = options;
  const violations = [...idViolations('tenant_id', tenantId), ...idViolations('user_id', userId)];
  if (
    !Number.isSafeInteger(ttlSeconds) ||
    ttlSeconds < 1 ||
    ttlSeconds > MAX_USER_TOKEN_TTL_SECONDS
  ) {
    violations.push({
      field: 'ttl_seconds',
      description: `must be a whole number from 1 to ${MAX_USER_TOKEN_TTL_SECONDS}`,
    });
  }
  if (violations.length > 0) throw new ValidationError(violations);

  const iat = Math.floor(now / 1000);
  const claims = {
    iss: issuer,
    aud: audience,
    sub: userId,
    tid: tenantId,
    iat,
    nbf: iat,
    exp: iat + ttlSeconds,
    jti: randomBytes(16).toString('base64url'),
  };
  const signingInput = `${HEADER}.${base64url(JSON.stringify(claims))}`;
  return `${signingInput}.${sign(signingInput, tenantTokenSecret(master, tenantId))}`;
}

export interface VerifyUserTokenOptions {
  /** The master secret (HERALD_TOKEN_SECRET). */
  master: string;
  issuer?: string;
  audience?: string;
  /** Milliseconds since the epoch. */
  now?: number;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default 30. */
  leewaySeconds?: number;
  /** The longest `exp − iat` accepted, in seconds. Default MAX_USER_TOKEN_TTL_SECONDS. */
  maxTtlSeconds?: number;
}

/** Who a verified token speaks for, and until when. */
export interface VerifiedUserToken {
  tenantId: string;
  userId: string;
  expiresAt: Date;
}

/** Checks a user token; throws UnauthenticatedError saying why when it is not acceptable. */
export function verifyUserToken(token: string, options: VerifyUserTokenOptions): VerifiedUserToken {
  const {
    master,
    issuer = 'herald',
    audience = 'herald-api',
    now = Date.now(),
    leewaySeconds = 30,
    maxTtlSeconds = MAX_USER_TOKEN_TTL_SECONDS,
  } = options;

  // Before any splitting or decoding, so an oversized credential costs nothing.
  if (typeof token !== 'string' || token.length === 0) reject('it is empty');
  if (token.length > MAX_USER_TOKEN_LENGTH) {
    reject(`it is longer than ${MAX_USER_TOKEN_LENGTH} characters`);
  }
  const parts = token.split('.');
  if (parts.length !== 3) reject('it must have three dot-separated parts');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];

  const header = decodeJsonObject(headerPart, 'header');
  if (header.alg !== 'HS256') reject(`algorithm ${quote(header.alg)} is not accepted (HS256 only)`);
  if (header.typ !== undefined && header.typ !== 'JWT')
    reject(`typ ${quote(header.typ)} is not JWT`);
  for (const name of Object.keys(header)) {
    // crit, kid, jku, x5u, jwk, …: we use none, and honouring any would let the token pick its key.
    if (!ALLOWED_HEADER_PARAMS.has(name)) reject(`header parameter "${name}" is not accepted`);
  }

  // The claims are read before the signature only to find the tenant whose secret checks it; a
  // forged tid only selects a secret the forger does not have. Nothing else is looked at until
  // the signature holds.
  const claims = decodeJsonObject(payloadPart, 'payload');
  const tenantId = claims.tid;
  if (!isId(tenantId)) reject('the tid claim is missing or invalid');

  const signature = decodePart(signaturePart, 'signature');
  const expected = createHmac('sha256', tenantTokenSecret(master, tenantId))
    .update(`${headerPart}.${payloadPart}`)
    .digest();
  // timingSafeEqual needs equal lengths; a signature's length is no secret.
  if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
    reject('the signature does not match');
  }

  const userId = claims.sub;
  if (!isId(userId)) reject('the sub claim is missing or invalid');
  if (claims.iss !== issuer) reject(`issuer ${quote(claims.iss)} is not ${quote(issuer)}`);
  if (!hasAudience(claims.aud, audience)) {
    reject(`audience ${quote(claims.aud)} does not include ${quote(audience)}`);
  }
  const { exp, iat, nbf } = claims;
  if (!isNumericDate(exp)) reject('the exp claim is missing or invalid');
  if (!isNumericDate(iat)) reject('the iat claim is missing or invalid');
  if (nbf !== undefined && !isNumericDate(nbf)) reject('the nbf claim is invalid');
  if (claims.jti !== undefined && typeof claims.jti !== 'string')
    reject('the jti claim is invalid');
  if (exp <= iat) reject('exp is not after iat');
  // A long-lived token cannot be revoked short of rotating the master; refuse to honour one.
  if (exp - iat > maxTtlSeconds) {
    reject(`its lifetime of ${exp - iat}s exceeds the ${maxTtlSeconds}s maximum`);
  }

  const leewayMs = leewaySeconds * 1000;
  if (exp * 1000 + leewayMs <= now) reject('it has expired');
  if (nbf !== undefined && nbf * 1000 - leewayMs > now) reject('it is not valid yet (nbf)');
  if (iat * 1000 - leewayMs > now) reject('it was issued in the future (iat)');

  return { tenantId, userId, expiresAt: new Date(exp * 1000) };
}

/**
 * Whether a credential has the shape of a JWT (three dot-separated base64url parts), so the auth
 * layer can route it to verifyUserToken rather than the API-key lookup (`hk_<prefix>_<secret>`
 * has no dots). An empty third part counts, so an `alg=none` token is rejected as a user token
 * with a precise reason instead of as an unknown key.
 */
export function looksLikeJwt(credential: string): boolean {
  return JWT_SHAPE.test(credential);
}

function reject(reason: string): never {
  throw new UnauthenticatedError(`user token rejected: ${reason}`);
}

/** Strict base64url: the alphabet only, no padding, and the one canonical encoding of its bytes. */
function decodePart(part: string, what: string): Buffer {
  if (!BASE64URL.test(part)) reject(`the ${what} is not base64url`);
  const bytes = Buffer.from(part, 'base64url');
  // Buffer.from silently drops stray trailing characters and bits; accepting them would give one
  // token many spellings.
  if (bytes.toString('base64url') !== part) reject(`the ${what} is not canonical base64url`);
  return bytes;
}

function decodeJsonObject(part: string, what: string): Record<string, unknown> {
  const bytes = decodePart(part, what);
  let value: unknown;
  try {
    value = JSON.parse(UTF8.decode(bytes));
  } catch {
    reject(`the ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    reject(`the ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function hasAudience(aud: unknown, audience: string): boolean {
  if (typeof aud === 'string') return aud === audience;
  return Array.isArray(aud) && aud.every((a) => typeof a === 'string') && aud.includes(audience);
}

function isId(value: unknown): value is string {
  return idViolations('', value).length === 0;
}

/** The rule of user ids in Send (validateUserId), for the tenant id too. */
function idViolations(field: string, value: unknown): FieldViolation[] {
  if (typeof value !== 'string') return [{ field, description: 'is required' }];
  const v: FieldViolation[] = [];
  validateUserId(value, (f, description) => v.push({ field: f, description }), field);
  return v;
}

/** Whole seconds since the epoch, as our tokens carry; fractions and negatives are refused. */
function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A claim or header value for an error message, kept short: it comes from the caller. */
function quote(value: unknown): string {
  const text = value === undefined ? 'missing' : JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function sign(signingInput: string, secret: Buffer): string {
  return createHmac('sha256', secret).update(signingInput).digest('base64url');
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}
