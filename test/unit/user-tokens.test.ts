/**
 * User tokens: what issueUserToken mints verifies, and every way a token can be forged, tampered
 * with, stale or malformed is rejected with UnauthenticatedError saying why. Fixed clocks, no sleeps.
 */
import { createHmac } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import {
  PermissionDeniedError,
  UnauthenticatedError,
  ValidationError,
} from '../../src/domain/errors.js';
import type { Logger } from '../../src/domain/ports.js';
import {
  issueUserToken,
  looksLikeJwt,
  MAX_USER_TOKEN_LENGTH,
  tenantTokenSecret,
  verifyUserToken,
  type VerifyUserTokenOptions,
} from '../../src/infra/auth/user-tokens.js';
import { toConnectError } from '../../src/server/errors.js';

const MASTER = 'm'.repeat(16) + '-master-secret-0123456789';
const OTHER_MASTER = 'o'.repeat(16) + '-master-secret-0123456789';
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const IAT = NOW / 1000;

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString(
    'base64url',
  );
}

/** Signs any header and claims, as a forger (or a backend with the right secret) would. */
function craft(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  options: { secret?: Buffer | string; hash?: string } = {},
): string {
  const secret = options.secret ?? tenantTokenSecret(MASTER, String(claims.tid));
  const input = `${b64(header)}.${b64(claims)}`;
  const sig = createHmac(options.hash ?? 'sha256', secret)
    .update(input)
    .digest('base64url');
  return `${input}.${sig}`;
}

const HS256 = { alg: 'HS256', typ: 'JWT' };

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    iss: 'herald',
    aud: 'herald-api',
    sub: 'user-1',
    tid: 'tenant-a',
    iat: IAT,
    nbf: IAT,
    exp: IAT + 900,
    jti: 'j1',
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

function issue(overrides: Partial<Parameters<typeof issueUserToken>[0]> = {}): string {
  return issueUserToken({
    master: MASTER,
    tenantId: 'tenant-a',
    userId: 'user-1',
    now: NOW,
    ...overrides,
  });
}

function verify(token: string, options: Partial<VerifyUserTokenOptions> = {}) {
  return verifyUserToken(token, { master: MASTER, now: NOW, ...options });
}

function expectRejected(
  token: string,
  reason: RegExp,
  options: Partial<VerifyUserTokenOptions> = {},
): void {
  let caught: unknown;
  try {
    verify(token, options);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(UnauthenticatedError);
  expect((caught as UnauthenticatedError).kind).toBe('unauthenticated');
  expect((caught as Error).message).toMatch(reason);
}

function partsOf(token: string): [string, string, string] {
  return token.split('.') as [string, string, string];
}

function decode(part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('issueUserToken / verifyUserToken', () => {
  it('round-trips the tenant, user and expiry when the token is fresh', () => {
    const token = issue();
    expect(verify(token)).toEqual({
      tenantId: 'tenant-a',
      userId: 'user-1',
      expiresAt: new Date(NOW + 900_000),
    });
  });

  it('writes the documented header and claims when issuing', () => {
    const [header, payload, signature] = partsOf(issue({ ttlSeconds: 60 }));
    expect(decode(header)).toEqual({ alg: 'HS256', typ: 'JWT' });
    const body = decode(payload);
    expect(body).toMatchObject({
      iss: 'herald',
      aud: 'herald-api',
      sub: 'user-1',
      tid: 'tenant-a',
      iat: IAT,
      nbf: IAT,
      exp: IAT + 60,
    });
    expect(Object.keys(body).sort()).toEqual(
      ['aud', 'exp', 'iat', 'iss', 'jti', 'nbf', 'sub', 'tid'].sort(),
    );
    expect(body.jti).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    for (const part of [header, payload, signature]) expect(part).not.toMatch(/[=+/]/);
  });

  it('gives each token a fresh jti when issued twice in the same second', () => {
    expect(decode(partsOf(issue())[1]).jti).not.toBe(decode(partsOf(issue())[1]).jti);
  });

  it('accepts a token a backend minted itself with the derived secret', () => {
    expect(verify(craft(HS256, claims())).userId).toBe('user-1');
  });

  it('honours a custom issuer and audience when both sides agree', () => {
    const token = issue({ issuer: 'shop', audience: 'shop-frontend' });
    expect(verify(token, { issuer: 'shop', audience: 'shop-frontend' }).userId).toBe('user-1');
    expectRejected(token, /issuer "shop" is not "herald"/);
  });

  it('accepts an aud array when it contains our audience', () => {
    expect(verify(craft(HS256, claims({ aud: ['other', 'herald-api'] }))).userId).toBe('user-1');
  });

  it('refuses to issue when the ids or the ttl are unusable', () => {
    expect(() => issue({ tenantId: '' })).toThrow(ValidationError);
    expect(() => issue({ userId: 'x'.repeat(129) })).toThrow(ValidationError);
    expect(() => issue({ userId: 'a\u0000b' })).toThrow(ValidationError);
    expect(() => issue({ ttlSeconds: 0 })).toThrow(ValidationError);
    expect(() => issue({ ttlSeconds: 1.5 })).toThrow(ValidationError);
    expect(() => issue({ ttlSeconds: 86_401 })).toThrow(/ttl_seconds/);
  });

  it('refuses a master secret shorter than 32 characters', () => {
    expect(() => issue({ master: 'short' })).toThrow(RangeError);
    expect(() => verify(issue(), { master: 'x'.repeat(31) })).toThrow(RangeError);
  });
});

describe('verifyUserToken forgeries', () => {
  it('rejects a token re-signed with a wrong secret', () => {
    expectRejected(craft(HS256, claims(), { secret: 'guessed' }), /signature does not match/);
  });

  it('rejects a token signed with another tenant secret when its tid names tenant A', () => {
    const secretB = tenantTokenSecret(MASTER, 'tenant-b');
    expectRejected(craft(HS256, claims(), { secret: secretB }), /signature does not match/);
  });

  it('rejects a token of tenant A whose tid was changed to B', () => {
    const [header, payload, signature] = partsOf(issue());
    const changed = b64({ ...decode(payload), tid: 'tenant-b' });
    expectRejected(`${header}.${changed}.${signature}`, /signature does not match/);
  });

  it('rejects a payload tampered with after signing', () => {
    const [header, payload, signature] = partsOf(issue());
    const changed = b64({ ...decode(payload), sub: 'admin' });
    expectRejected(`${header}.${changed}.${signature}`, /signature does not match/);
  });

  it('rejects a token whose header was swapped after signing', () => {
    const [, payload, signature] = partsOf(issue());
    expectRejected(`${b64({ typ: 'JWT', alg: 'HS256' })}.${payload}.${signature}`, /signature/);
  });

  it('rejects a token issued under a rotated master', () => {
    expectRejected(issue({ master: OTHER_MASTER }), /signature does not match/);
  });

  it('rejects alg=none with an empty signature', () => {
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
    expect(looksLikeJwt(token)).toBe(true);
    expectRejected(token, /algorithm "none" is not accepted/);
  });

  it.each(['none', 'None', 'NONE', 'hs256', 'Hs256', 'HS384', 'RS256', 'ES256', 'PS256', ''])(
    'rejects alg %j',
    (alg) => {
      expectRejected(craft({ alg, typ: 'JWT' }, claims()), /algorithm .* is not accepted/);
    },
  );

  it('rejects alg HS512 even with a valid HS512 signature', () => {
    const token = craft({ alg: 'HS512', typ: 'JWT' }, claims(), { hash: 'sha512' });
    expectRejected(token, /algorithm "HS512" is not accepted/);
  });

  it('rejects an RS256 header', () => {
    expectRejected(craft({ alg: 'RS256', typ: 'JWT' }, claims()), /algorithm "RS256"/);
  });

  it('rejects a missing or non-string alg', () => {
    expectRejected(craft({ typ: 'JWT' }, claims()), /algorithm missing is not accepted/);
    expectRejected(craft({ alg: ['HS256'] }, claims()), /algorithm \["HS256"\]/);
  });

  it.each(['jwt', 'at+jwt', 'JWS', 5])('rejects typ %j', (typ) => {
    expectRejected(craft({ alg: 'HS256', typ }, claims()), /typ .* is not JWT/);
  });

  it('accepts a header without typ', () => {
    expect(verify(craft({ alg: 'HS256' }, claims())).userId).toBe('user-1');
  });

  it.each([
    ['crit', ['exp']],
    ['kid', 'tenant-b'],
    ['jku', 'https://evil.example/jwks.json'],
    ['x5u', 'https://evil.example/cert.pem'],
    ['jwk', { kty: 'oct', k: 'AAAA' }],
    ['x5c', ['MIIB']],
    ['b64', false],
  ])('rejects a %s header parameter', (name, value) => {
    const token = craft({ ...HS256, [name]: value }, claims());
    expectRejected(token, new RegExp(`header parameter "${name}" is not accepted`));
  });
});

describe('verifyUserToken claims', () => {
  it('rejects a wrong audience', () => {
    expectRejected(craft(HS256, claims({ aud: 'other-api' })), /audience "other-api"/);
    expectRejected(craft(HS256, claims({ aud: ['a', 'b'] })), /does not include "herald-api"/);
    expectRejected(craft(HS256, claims({ aud: [7, 'herald-api'] })), /audience/);
    expectRejected(issue(), /audience/, { audience: 'admin-api' });
  });

  it('rejects a missing audience', () => {
    expectRejected(craft(HS256, claims({ aud: undefined })), /audience missing/);
  });

  it('rejects a wrong or missing issuer', () => {
    expectRejected(craft(HS256, claims({ iss: 'evil' })), /issuer "evil" is not "herald"/);
    expectRejected(craft(HS256, claims({ iss: undefined })), /issuer missing/);
  });

  it.each(['sub', 'tid', 'exp', 'iat'])('rejects a token without %s', (name) => {
    // A token without tid cannot be checked at all: there is no secret to check it with.
    const token = craft(HS256, claims({ [name]: undefined }), {
      secret: tenantTokenSecret(MASTER, 'tenant-a'),
    });
    expectRejected(token, new RegExp(`the ${name} claim is missing or invalid`));
  });

  it.each([
    ['sub', 42],
    ['sub', ''],
    ['sub', 'x'.repeat(129)],
    ['sub', 'a\nb'],
    ['tid', 7],
    ['tid', ''],
    ['tid', 'a\u0085b'],
    ['exp', '1893499200'],
    ['exp', IAT + 0.5],
    ['exp', -1],
    ['iat', null],
    ['iat', IAT - 0.25],
  ])('rejects %s = %j', (name, value) => {
    const token = craft(HS256, claims({ [name]: value }), {
      secret: tenantTokenSecret(MASTER, 'tenant-a'),
    });
    expectRejected(token, new RegExp(`the ${name} claim is missing or invalid`));
  });

  it('rejects an invalid nbf or jti', () => {
    expectRejected(craft(HS256, claims({ nbf: 'soon' })), /the nbf claim is invalid/);
    expectRejected(craft(HS256, claims({ jti: 12 })), /the jti claim is invalid/);
  });

  it('rejects exp not after iat', () => {
    expectRejected(craft(HS256, claims({ exp: IAT })), /exp is not after iat/);
  });

  it('rejects a lifetime over the maximum', () => {
    const longLived = craft(HS256, claims({ exp: IAT + 86_401 }));
    expectRejected(longLived, /lifetime of 86401s exceeds the 86400s maximum/);
    expect(verify(craft(HS256, claims({ exp: IAT + 86_400 }))).userId).toBe('user-1');
    expectRejected(issue({ ttlSeconds: 900 }), /exceeds the 600s maximum/, {
      maxTtlSeconds: 600,
    });
  });

  it('rejects a token with no nbf that was issued in the future', () => {
    const token = craft(HS256, claims({ nbf: undefined, iat: IAT + 60, exp: IAT + 600 }));
    expectRejected(token, /issued in the future/);
  });
});

describe('verifyUserToken clock', () => {
  const token = issueUserToken({
    master: MASTER,
    tenantId: 'tenant-a',
    userId: 'user-1',
    ttlSeconds: 900,
    now: NOW,
  });
  const expMs = NOW + 900_000;

  it('accepts a token within the leeway after exp', () => {
    expect(verify(token, { now: expMs }).userId).toBe('user-1');
    expect(verify(token, { now: expMs + 29_999 }).userId).toBe('user-1');
  });

  it('rejects a token once exp plus the leeway has passed', () => {
    expectRejected(token, /it has expired/, { now: expMs + 30_000 });
    expectRejected(token, /it has expired/, { now: expMs + 86_400_000 });
  });

  it('rejects at exp when the leeway is zero', () => {
    expect(verify(token, { now: expMs - 1, leewaySeconds: 0 }).userId).toBe('user-1');
    expectRejected(token, /it has expired/, { now: expMs, leewaySeconds: 0 });
  });

  it('rejects a token whose nbf is beyond the leeway in the future', () => {
    const later = craft(HS256, claims({ nbf: IAT + 100 }));
    expectRejected(later, /not valid yet/);
    expectRejected(later, /not valid yet/, { now: (IAT + 69) * 1000 });
    expect(verify(later, { now: (IAT + 70) * 1000 }).userId).toBe('user-1');
  });

  it('accepts a token from a server whose clock runs up to the leeway ahead', () => {
    const ahead = issue({ now: NOW + 30_000 });
    expect(verify(ahead).userId).toBe('user-1');
    expectRejected(issue({ now: NOW + 31_000 }), /not valid yet/);
  });
});

describe('verifyUserToken malformed input', () => {
  it.each([
    ['', /it is empty/],
    ['a', /three dot-separated parts/],
    ['a.b', /three dot-separated parts/],
    ['a.b.c.d', /three dot-separated parts/],
    ['..', /the header is not JSON/],
    ['hk_abc123_s3cr3t', /three dot-separated parts/],
    ['!!.!!.!!', /the header is not base64url/],
    ['eyJhbGciOiJIUzI1NiJ9=.e30.sig', /the header is not base64url/],
    ['eyJ hbGc.e30.x', /the header is not base64url/],
    [`${b64('not json')}.e30.x`, /the header is not JSON/],
    [`${b64('[1,2]')}.e30.x`, /the header is not a JSON object/],
    [`${b64('null')}.e30.x`, /the header is not a JSON object/],
    [`${b64(HS256)}.${b64('"str"')}.x`, /the payload is not a JSON object/],
    [`${b64(HS256)}.${b64('{')}.x`, /the payload is not JSON/],
    [`${b64(HS256)}.${b64(claims())}.not+base64`, /the signature is not base64url/],
  ])('rejects %j', (token, reason) => {
    expectRejected(token, reason);
  });

  it('rejects a payload that is not valid UTF-8', () => {
    const bad = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url');
    expectRejected(`${b64(HS256)}.${bad}.x`, /the payload is not JSON/);
  });

  it('rejects a non-canonical base64url spelling of a valid token', () => {
    const [header, payload, signature] = partsOf(issue());
    // 32 bytes take 43 characters: the last one's two low bits are spare, and flipping one
    // spells the same bytes differently.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const respelled = signature.slice(0, -1) + alphabet[alphabet.indexOf(signature.at(-1)!) ^ 1]!;
    expect(respelled).not.toBe(signature);
    expect(Buffer.from(respelled, 'base64url')).toEqual(Buffer.from(signature, 'base64url'));
    expectRejected(`${header}.${payload}.${respelled}`, /signature is not canonical/);
  });

  it('rejects a truncated or over-long signature', () => {
    const [header, payload, signature] = partsOf(issue());
    expectRejected(`${header}.${payload}.${signature.slice(0, 40)}`, /signature does not match/);
    expectRejected(`${header}.${payload}.${signature}AAAA`, /signature does not match/);
    expectRejected(`${header}.${payload}.`, /signature does not match/);
  });

  it('rejects a validly signed token over 4 KiB before parsing it', () => {
    const huge = craft(HS256, claims({ pad: 'x'.repeat(MAX_USER_TOKEN_LENGTH) }));
    expect(huge.length).toBeGreaterThan(MAX_USER_TOKEN_LENGTH);
    expectRejected(huge, /longer than 4096 characters/);
    expectRejected('a'.repeat(1_000_000), /longer than 4096 characters/);
  });

  it('accepts a validly signed token just under the limit', () => {
    const base = craft(HS256, claims({ pad: '' })).length;
    // Every 3 bytes of JSON add 4 characters.
    const pad = 'x'.repeat(Math.floor(((MAX_USER_TOKEN_LENGTH - base) * 3) / 4) - 3);
    const token = craft(HS256, claims({ pad }));
    expect(token.length).toBeLessThanOrEqual(MAX_USER_TOKEN_LENGTH);
    expect(verify(token).userId).toBe('user-1');
  });
});

describe('tenantTokenSecret', () => {
  it('is HMAC-SHA256 of the prefixed tenant id under the master', () => {
    const expected = createHmac('sha256', MASTER).update('herald-user-token:tenant-a').digest();
    expect(tenantTokenSecret(MASTER, 'tenant-a')).toEqual(expected);
    expect(tenantTokenSecret(MASTER, 'tenant-a')).toHaveLength(32);
  });

  it('is the same for the same inputs and differs per tenant and per master', () => {
    const a = tenantTokenSecret(MASTER, 'tenant-a');
    expect(tenantTokenSecret(MASTER, 'tenant-a')).toEqual(a);
    expect(tenantTokenSecret(MASTER, 'tenant-b')).not.toEqual(a);
    expect(tenantTokenSecret(OTHER_MASTER, 'tenant-a')).not.toEqual(a);
  });
});

describe('looksLikeJwt', () => {
  it('is true for an issued token and an unsigned one', () => {
    expect(looksLikeJwt(issue())).toBe(true);
    expect(looksLikeJwt('eyJh.eyJz.')).toBe(true);
  });

  it.each([
    '',
    'hk_abc123_s3cr3t',
    'a.b',
    'a.b.c.d',
    '.b.c',
    'a..c',
    'a b.c.d',
    'a.b.c=',
    'a.b.c\n',
  ])('is false for %j', (credential) => {
    expect(looksLikeJwt(credential)).toBe(false);
  });
});

describe('toConnectError', () => {
  it('maps UnauthenticatedError to Unauthenticated and keeps the reason', () => {
    const err = toConnectError(
      new UnauthenticatedError('user token rejected: it has expired'),
      silent,
      'rpc',
    );
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe('user token rejected: it has expired');
  });

  it('maps PermissionDeniedError to PermissionDenied', () => {
    const err = toConnectError(new PermissionDeniedError('scope read required'), silent, 'rpc');
    expect(err.code).toBe(Code.PermissionDenied);
  });
});
