/**
 * RELIABILITY R17: seeded fake PII and secrets never appear in logs. One `herald all` process
 * logging at debug, authentication on, real providers (SMTP, Twilio, FCM, webhook) pointed at
 * local fakes that echo what they were sent back in their errors, is driven through successful
 * deliveries, validation failures, provider failures, retries, dead letters, a replay, and
 * refused credentials; then everything it wrote is searched for every seed.
 */
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Code } from '@connectrpc/connect';
import { Channel, createHeraldClient, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey, parseApiKey } from '../../src/infra/auth/api-keys.js';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { rejection } from '../support/connect.js';
import { startHttpFake, type HttpFake, type RecordedRequest } from '../support/fakes/http-fake.js';
import { startFakeSmtpServer, type FakeSmtpServer } from '../support/fakes/smtp.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { killAll, spawnHeraldAll, type HeraldProcess } from '../support/processes.js';

const MASTER = `pii-master-${randomBytes(16).toString('hex')}`;
const TENANT = 'tenant-pii';
const USER = 'u-pii';
const PROJECT = 'pii-test';
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';

const hex = () => randomBytes(6).toString('hex');
const phone = () => `+1555${String(randomInt(0, 10_000_000)).padStart(7, '0')}`;
const rsa = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});

/** Every value that must never be logged, by what it is. */
const seeds = {
  email: `pii-${hex()}@example.com`,
  emailRejected: `pii-${hex()}@example.com`,
  emailGreylisted: `pii-${hex()}@example.com`,
  emailSpam: `pii-${hex()}@example.com`,
  emailInvalid: `pii-${hex()}@example.com`,
  phone: phone(),
  phoneRejected: phone(),
  phoneFlaky: phone(),
  phoneInvalid: phone(),
  body: `secret-body-${hex()}`,
  subject: `secret-subject-${hex()}`,
  title: `secret-title-${hex()}`,
  dataValue: `secret-data-${hex()}`,
  metadataValue: `secret-meta-${hex()}`,
  deviceToken: `device-token-${hex()}:${randomBytes(24).toString('base64url')}`,
  deviceTokenRejected: `device-token-${hex()}:${randomBytes(24).toString('base64url')}`,
  deviceTokenFlaky: `device-token-${hex()}:${randomBytes(24).toString('base64url')}`,
  webhookPath: `hook-token-${hex()}`,
  webhookUrlPassword: `url-password-${hex()}`,
  smtpPassword: `smtp-pass-${hex()}`,
  twilioAuthToken: `twilio-token-${hex()}`,
  webhookSecret: `webhook-secret-${hex()}`,
  // A line from the middle of the PEM: any of it logged would be a leak.
  privateKey: rsa.privateKey.split('\n')[10] ?? '',
  masterSecret: MASTER,
};

/** Seeds learned once Herald runs: API keys, user tokens. */
const secrets: Record<string, string> = {};

let t: TestHerald;
let herald: HeraldProcess;
let smtp: FakeSmtpServer;
let twilio: HttpFake;
let fcm: HttpFake;
let hook: HttpFake;
let admin: HeraldClient;
const clients: HeraldClient[] = [];

function client(baseUrl: string, apiKey?: string, protocol?: 'connect'): HeraldClient {
  const c = createHeraldClient({ baseUrl, apiKey, protocol });
  clients.push(c);
  return c;
}

/** Twilio: the first phone succeeds, the others fail with Twilio's usual echo of the number. */
function twilioAnswer(req: RecordedRequest) {
  const form = new URLSearchParams(req.body);
  const to = form.get('To') ?? '';
  const body = form.get('Body') ?? '';
  if (to === seeds.phoneRejected) {
    return {
      status: 400,
      body: {
        code: 21211,
        message: `The 'To' number ${to} (${to.slice(1)}) is not a valid phone number.`,
        more_info: 'https://www.twilio.com/docs/errors/21211',
        status: 400,
      },
    };
  }
  if (to === seeds.phoneFlaky) {
    return {
      status: 503,
      body: { code: 20503, message: `Service unavailable sending "${body}" to ${to}`, status: 503 },
    };
  }
  return { status: 201, body: { sid: `SM${hex()}`, to, body, status: 'queued' } };
}

/** FCM: a token endpoint, and sends that echo the device token and the content in their errors. */
function fcmAnswer(req: RecordedRequest) {
  if (req.path === '/token') {
    return { status: 200, body: { access_token: `ya29.${hex()}`, expires_in: 3600 } };
  }
  const message = (JSON.parse(req.body) as { message: Record<string, unknown> }).message;
  const token = String(message.token);
  const echo = JSON.stringify(message);
  if (token === seeds.deviceTokenRejected) {
    return {
      status: 400,
      body: {
        error: {
          code: 400,
          message: `The registration token ${token} is not valid for message ${echo}`,
          status: 'INVALID_ARGUMENT',
          details: [{ '@type': FCM_ERROR_TYPE, errorCode: 'INVALID_ARGUMENT' }],
        },
      },
    };
  }
  if (token === seeds.deviceTokenFlaky) {
    return {
      status: 503,
      body: { error: { code: 503, message: `Unavailable for ${echo}`, status: 'UNAVAILABLE' } },
    };
  }
  return { status: 200, body: { name: `projects/${PROJECT}/messages/${hex()}` } };
}

/** The webhook receiver: /ok accepts, /reject and /flaky answer with the request echoed. */
function hookAnswer(req: RecordedRequest) {
  if (req.path.startsWith('/reject')) return { status: 400, body: `rejected: ${req.body}` };
  if (req.path.startsWith('/flaky')) return { status: 500, body: { error: 'boom', got: req.body } };
  return { status: 200 };
}

beforeAll(async () => {
  smtp = await startFakeSmtpServer({ auth: { user: 'herald', pass: seeds.smtpPassword } });
  twilio = await startHttpFake();
  twilio.respond(twilioAnswer);
  fcm = await startHttpFake();
  fcm.respond(fcmAnswer);
  hook = await startHttpFake();
  hook.respond(hookAnswer);
  // No api, worker or scheduler here: this only provides the database and the NATS layout.
  t = await startTestHerald({ roles: [] });

  secrets.adminKey = await createTestApiKey(t.db.pool, TENANT, ['send', 'read', 'admin']);

  const providers = {
    email: [
      {
        type: 'smtp',
        host: '127.0.0.1',
        port: smtp.port,
        from: 'Herald <no-reply@herald.test>',
        tlsRejectUnauthorized: false,
        user: 'herald',
        pass: '${PII_SMTP_PASSWORD}',
      },
    ],
    sms: [
      {
        type: 'twilio',
        baseUrl: twilio.url,
        accountSid: `AC${hex()}`,
        authToken: seeds.twilioAuthToken,
        from: '+15550000000',
      },
    ],
    push: [
      {
        type: 'fcm',
        projectId: PROJECT,
        clientEmail: `herald@${PROJECT}.iam.gserviceaccount.com`,
        privateKey: rsa.privateKey,
        tokenUri: `${fcm.url}/token`,
        baseUrl: fcm.url,
      },
    ],
    webhook: [{ type: 'webhook', name: 'hook', secret: seeds.webhookSecret }],
  };
  ({ child: herald } = await spawnHeraldAll({
    ...t.env,
    HERALD_LOG_LEVEL: 'debug',
    HERALD_AUTH: 'required',
    HERALD_TOKEN_SECRET: MASTER,
    HERALD_KEY_CACHE_MS: '0',
    HERALD_PROVIDERS: JSON.stringify(providers),
    PII_SMTP_PASSWORD: seeds.smtpPassword,
    HERALD_RETRY_BASE_MS: '50',
    HERALD_RETRY_CAP_MS: '200',
    HERALD_RETRY_MAX_ATTEMPTS: '2',
    HERALD_BREAKER_FAILURES: '1000',
  }));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await killAll();
  await Promise.all([smtp?.stop(), twilio?.close(), fcm?.close(), hook?.close()]);
  await t?.stop();
});

/** Waits until every id has `status`. */
async function settle(ids: readonly string[], status: 'DELIVERED' | 'FAILED'): Promise<void> {
  await expect
    .poll(
      async () => {
        const { rows } = await t.db.pool.query<{ status: string }>(
          'select status from notification where id = any($1::uuid[])',
          [ids],
        );
        return rows.filter((r) => r.status === status).length;
      },
      { timeout: 30_000, interval: 100 },
    )
    .toBe(ids.length);
}

describe('logs', () => {
  it('never contain the seeded PII or secrets, whatever path a request takes', async () => {
    const h2cUrl = (await herald.waitFor(/\(h2c\) on (http:\/\/127\.0\.0\.1:\d+)/))[1] as string;
    const httpUrl = (
      await herald.waitFor(/\(HTTP\/1\.1\) on (http:\/\/127\.0\.0\.1:\d+)/)
    )[1] as string;
    admin = client(h2cUrl, secrets.adminKey);
    const overHttp1 = client(httpUrl, secrets.adminKey, 'connect');
    const content = {
      subject: seeds.subject,
      body: seeds.body,
      title: seeds.title,
      data: { detail: seeds.dataValue },
    };
    const send = (channel: Channel, to: string, via: HeraldClient = admin) =>
      via
        .send({
          userId: USER,
          channel,
          to,
          content:
            channel === Channel.EMAIL
              ? { subject: content.subject, body: content.body }
              : channel === Channel.SMS
                ? { body: content.body }
                : content,
          metadata: { note: seeds.metadataValue },
        })
        .then((r) => r.id);

    // Deliveries that succeed, on every channel and both ports.
    const delivered = await Promise.all([
      send(Channel.EMAIL, seeds.email),
      send(Channel.SMS, seeds.phone, overHttp1),
      send(Channel.PUSH, seeds.deviceToken),
      send(Channel.WEBHOOK, `${hook.url}/ok/${seeds.webhookPath}`, overHttp1),
      send(Channel.IN_APP, ''),
    ]);
    await settle(delivered, 'DELIVERED');

    // Providers that refuse, echoing the recipient and the content in their errors: permanent
    // failures, and transient ones retried until the attempts run out, all dead-lettered.
    const failed = await Promise.all([
      send(Channel.SMS, seeds.phoneRejected),
      send(Channel.SMS, seeds.phoneFlaky),
      send(Channel.PUSH, seeds.deviceTokenRejected),
      send(Channel.PUSH, seeds.deviceTokenFlaky),
      send(Channel.WEBHOOK, `${hook.url}/reject/${seeds.webhookPath}`),
      send(Channel.WEBHOOK, `${hook.url}/flaky/${seeds.webhookPath}`),
    ]);
    // A URL with credentials is refused at Send (fetch, which quotes the URL in its error, would
    // refuse it on every attempt); the refusal names the rule, not the URL.
    const withCredentials = await rejection(
      send(
        Channel.WEBHOOK,
        `http://user:${seeds.webhookUrlPassword}@127.0.0.1:${new URL(hook.url).port}/ok`,
      ),
    );
    expect(withCredentials.code).toBe(Code.InvalidArgument);
    expect(withCredentials.rawMessage).not.toContain(seeds.webhookUrlPassword);
    // The SMTP fake's refusals apply to everything after them: one at a time.
    const smtpRefusals: [stage: 'rcpt' | 'data', code: number, text: string, to: string][] = [
      [
        'rcpt',
        550,
        `5.1.1 <${seeds.emailRejected}>: Recipient address rejected`,
        seeds.emailRejected,
      ],
      [
        'rcpt',
        451,
        `4.7.1 <${seeds.emailGreylisted.toUpperCase()}>: Recipient address rejected: greylisted`,
        seeds.emailGreylisted,
      ],
      [
        'data',
        554,
        `5.7.1 Message from ${seeds.emailSpam} rejected: "${seeds.body}"`,
        seeds.emailSpam,
      ],
    ];
    for (const [stage, code, text, to] of smtpRefusals) {
      smtp.accept();
      smtp.reply(stage, code, text);
      const id = await send(Channel.EMAIL, to);
      await settle([id], 'FAILED');
      failed.push(id);
    }
    smtp.accept();
    await settle(failed, 'FAILED');

    // Dead letters: searched by a filter naming the recipient (the stored errors no longer name it
    // either), and one replayed, failing again.
    const listed = await admin.deadLetters.listDeadLetters({
      filter: { errorContains: seeds.phoneRejected },
    });
    expect(listed.deadLetters).toEqual([]);
    const replayed = await admin.deadLetters.replayDeadLetters({ ids: [failed[0]] });
    expect(replayed.replayedIds).toEqual([failed[0]]);

    // Validation failures whose bad values carry PII.
    const invalid: [Channel, string, Record<string, unknown>][] = [
      [Channel.EMAIL, `${seeds.emailInvalid} <x>`, {}],
      [Channel.SMS, `${seeds.phoneInvalid}-0`, {}],
      [Channel.PUSH, `${seeds.deviceToken} x`, {}],
      [Channel.WEBHOOK, `ftp://${seeds.webhookPath}.example`, {}],
      [
        Channel.EMAIL,
        seeds.email,
        { content: { subject: `${seeds.subject}\r\nBcc: x`, body: 'b' } },
      ],
      [Channel.SMS, seeds.phone, { content: { body: `${seeds.body} ${'x'.repeat(1_600)}` } }],
      [Channel.IN_APP, '', { metadata: { note: `${seeds.metadataValue}${'m'.repeat(512)}` } }],
    ];
    for (const [channel, to, overrides] of invalid) {
      const err = await rejection(
        admin.send({ userId: USER, channel, to, content: content, ...overrides }),
      );
      expect(err.code).toBe(Code.InvalidArgument);
    }

    // Credentials refused: an unknown key, a malformed one, a revoked one, bad user tokens.
    const created = await admin.admin.createApiKey({ name: 'to revoke', scopes: ['read'] });
    secrets.revokedKey = created.apiKey;
    await admin.admin.revokeApiKey({ id: created.key?.id ?? '' });
    secrets.unknownKey = newApiKey(TENANT, 'never stored', ['send']).apiKey;
    secrets.malformedKey = `hk_${hex()}`;
    const now = Date.now();
    secrets.userToken = issueUserToken({ master: MASTER, tenantId: TENANT, userId: USER });
    secrets.forgedToken = issueUserToken({
      master: `${MASTER}-not`,
      tenantId: TENANT,
      userId: USER,
    });
    secrets.expiredToken = issueUserToken({
      master: MASTER,
      tenantId: TENANT,
      userId: USER,
      ttlSeconds: 60,
      now: now - 3_600_000,
    });
    secrets.garbageToken = `eyJ${hex()}.${hex()}.${hex()}`;
    for (const credential of [
      secrets.revokedKey,
      secrets.unknownKey,
      secrets.malformedKey,
      secrets.forgedToken,
      secrets.expiredToken,
      secrets.garbageToken,
    ]) {
      for (const c of [client(h2cUrl, credential), client(httpUrl, credential, 'connect')]) {
        const err = await rejection(c.getNotification({ id: delivered[0] }));
        expect(err.code).toBe(Code.Unauthenticated);
      }
    }
    const wrongScheme = createHeraldClient({
      baseUrl: h2cUrl,
      headers: { authorization: `Basic ${seeds.smtpPassword}` },
    });
    clients.push(wrongScheme);
    expect((await rejection(wrongScheme.listNotifications({}))).code).toBe(Code.Unauthenticated);
    // A user token: reads its own notifications, may not send.
    const user = client(h2cUrl, secrets.userToken);
    expect((await user.getNotification({ id: delivered[0] })).notification?.id).toBe(delivered[0]);
    expect((await rejection(send(Channel.SMS, seeds.phone, user))).code).toBe(
      Code.PermissionDenied,
    );
    await settle([failed[0]], 'FAILED');

    // Stop gracefully, so every buffered log line is written.
    herald.proc.kill('SIGTERM');
    expect(await herald.exited).toEqual({ code: 0, signal: null });
    const output = herald.output();

    // The paths above were taken, and logged.
    const messages = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { msg?: string }).msg);
    expect(messages).toContain('retrying');
    expect(messages.filter((m) => m === 'delivery failed; dead-lettered').length).toBeGreaterThan(
      failed.length,
    );
    expect(messages).toContain('dead letters replayed');
    // Nothing was delivered by the log provider: every delivery went to a provider under test.
    expect(existsSync(t.logFile) ? readFileSync(t.logFile, 'utf8') : '').toBe('');

    const all: Record<string, string> = { ...seeds, ...secrets };
    // The secret part of each API key (its prefix is an identifier, shown by ListApiKeys).
    for (const name of ['adminKey', 'revokedKey', 'unknownKey']) {
      all[`${name}Secret`] = parseApiKey(all[name] as string)?.secret ?? '';
    }
    // Phone numbers also without their +, emails in any case.
    for (const name of ['phone', 'phoneRejected', 'phoneFlaky', 'phoneInvalid'] as const) {
      all[`${name}Digits`] = seeds[name].slice(1);
    }
    const haystack = output.toLowerCase();
    const leaks = Object.entries(all)
      .filter(([, value]) => value !== '' && haystack.includes(value.toLowerCase()))
      .map(([name, value]) => ({
        name,
        line: output.split('\n').find((l) => l.toLowerCase().includes(value.toLowerCase())),
      }));
    expect(leaks).toEqual([]);
  }, 180_000);
});
