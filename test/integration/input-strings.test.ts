/**
 * Strings the contract forbids (or PostgreSQL cannot store: U+0000) in the fields of the RPCs
 * that only read, delete or name things: each is INVALID_ARGUMENT naming the field, never an
 * internal error, and the api goes on serving.
 */
import { Code } from '@connectrpc/connect';
import { createHeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection, violatedFields } from '../support/connect.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let t: TestHerald;

beforeAll(async () => {
  t = await startTestHerald({ roles: ['api'] });
});

afterAll(async () => {
  await t?.stop();
});

/** Calls `rpc` (service/method) with `body` as Connect JSON on the HTTP/1.1 port. */
async function call(rpc: string, body: unknown): Promise<{ status: number; json: ConnectBody }> {
  const res = await fetch(`${t.httpUrl}/herald.v1.${rpc}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as ConnectBody };
}

interface ConnectBody {
  code?: string;
  message?: string;
}

const NUL = 'a\u0000b';
const TOO_LONG = 'u'.repeat(129);

describe('fields of reads, deletes and names', () => {
  it.each([
    ['NotificationService/ListNotifications', { userId: NUL }, 'user_id'],
    ['NotificationService/ListNotifications', { userId: TOO_LONG }, 'user_id'],
    ['RecipientService/GetRecipient', { userId: NUL }, 'user_id'],
    ['RecipientService/GetRecipient', {}, 'user_id: is required'],
    ['RecipientService/GetRecipient', { userId: TOO_LONG }, 'user_id'],
    ['RecipientService/DeleteRecipient', { userId: NUL }, 'user_id'],
    ['RecipientService/DeleteRecipient', {}, 'user_id: is required'],
    ['RecipientService/RemovePushToken', { userId: NUL, token: 't' }, 'user_id'],
    ['RecipientService/RemovePushToken', { userId: 'u', token: 't\u0000ok' }, 'token'],
    ['RecipientService/RemovePushToken', {}, 'token: is required'],
    ['AdminService/CreateApiKey', { name: NUL, scopes: ['read'] }, 'name'],
    ['AdminService/RevokeApiKey', { id: 'nope' }, 'id: must be a UUID'],
    ['AdminService/RevokeApiKey', {}, 'id: must be a UUID'],
    [
      'TemplateService/CreateTemplate',
      {
        template: {
          id: 't-nul',
          defaultLocale: 'en',
          description: 'd\u0000',
          locales: { en: { sms: { text: 'x' } } },
        },
      },
      'template.description',
    ],
  ])('%s %j is invalid_argument naming %s', async (rpc, body, named) => {
    const { status, json } = await call(rpc, body);

    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.code).toBe('invalid_argument');
    expect(json.message).toContain(named);
  });

  it('WatchNotifications with a user id holding a control character is invalid_argument naming user_id', async () => {
    const client = createHeraldClient({ baseUrl: t.h2cUrl });
    try {
      const err = await rejection(
        (async () => {
          const stream = client.watchNotifications({ target: { case: 'userId', value: NUL } });
          await stream[Symbol.asyncIterator]().next();
        })(),
      );

      expect(err.code).toBe(Code.InvalidArgument);
      expect(violatedFields(err)).toEqual(['user_id']);
    } finally {
      client.close();
    }
  });

  it('keeps serving after them', async () => {
    const { status } = await call('RecipientService/GetRecipient', { userId: 'nobody' });

    expect(status).toBe(404);
  });
});
