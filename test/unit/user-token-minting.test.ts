/**
 * docs/user-tokens.md's backend minting example, run as written: its tokens are accepted for its
 * own tenant, and its tenant secret signs nothing another tenant accepts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantTokenSecret, verifyUserToken } from '../../src/infra/auth/user-tokens.js';

const MASTER = 'minting-test-master-secret-0123456789abcdef';
const DOC = new URL('../../docs/user-tokens.md', import.meta.url);

type Mint = (tenantId: string, userId: string, ttlSeconds?: number) => string;

let dir: string;
let heraldUserToken: Mint;

beforeAll(async () => {
  const doc = readFileSync(DOC, 'utf8');
  const section = doc.slice(doc.indexOf('## Minting tokens in your backend'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  if (code === undefined) throw new Error('docs/user-tokens.md has no js example to mint tokens');
  dir = mkdtempSync(join(tmpdir(), 'herald-mint-'));
  const file = join(dir, 'mint.mjs');
  writeFileSync(file, code);
  ({ heraldUserToken } = (await import(pathToFileURL(file).href)) as { heraldUserToken: Mint });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the documented backend minting example', () => {
  it('mints tokens Herald accepts for the tenant whose secret it holds, and for no other', () => {
    process.env.HERALD_TENANT_TOKEN_SECRET = tenantTokenSecret(MASTER, 'acme').toString(
      'base64url',
    );
    try {
      const verified = verifyUserToken(heraldUserToken('acme', 'u-42'), { master: MASTER });
      expect(verified).toMatchObject({ tenantId: 'acme', userId: 'u-42' });

      // Acme's backend cannot speak for another tenant's users.
      expect(() => verifyUserToken(heraldUserToken('globex', 'u-42'), { master: MASTER })).toThrow(
        /user token rejected: .*signature/,
      );
    } finally {
      delete process.env.HERALD_TENANT_TOKEN_SECRET;
    }
  });
});
