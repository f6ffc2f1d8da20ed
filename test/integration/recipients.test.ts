/**
 * RecipientService, and Sends that take their address from the recipient: email, phone and the
 * latest push token; FailedPrecondition naming what is missing; a push token the provider reports
 * unregistered is forgotten; deleting a recipient leaves no contact data.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { Channel, NotificationStatus, createHeraldClient, type HeraldClient } from '@herald/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection, violatedFields } from '../support/connect.js';
import { startFcmFake, type FcmFake } from '../support/fakes/fcm.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { countingPool } from '../support/postgres.js';
import { createRecipientStore } from '../../src/infra/postgres/recipient-store.js';

let t: TestHerald;
let client: HeraldClient;
let fcm: FcmFake;

beforeAll(async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  fcm = await startFcmFake({ publicKey, clientEmail: 'herald@test.iam', projectId: 'herald-test' });
  t = await startTestHerald({
    env: {
      HERALD_PROVIDERS: JSON.stringify({
        push: [
          {
            type: 'fcm',
            projectId: 'herald-test',
            clientEmail: 'herald@test.iam',
            privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
            tokenUri: fcm.tokenUri,
            baseUrl: fcm.url,
          },
        ],
      }),
    },
  });
  client = createHeraldClient({ baseUrl: t.h2cUrl });
});

afterAll(async () => {
  client?.close();
  await t?.stop();
  await fcm?.close();
});

const user = () => `r-${randomUUID()}`;

async function finalStatus(id: string) {
  let n;
  await expect
    .poll(
      async () => {
        n = (await client.getNotification({ id })).notification;
        return [NotificationStatus.DELIVERED, NotificationStatus.FAILED].includes(
          n?.status ?? NotificationStatus.UNSPECIFIED,
        );
      },
      { timeout: 20_000, interval: 50 },
    )
    .toBe(true);
  return n as unknown as { status: NotificationStatus; to: string };
}

describe('RecipientService', () => {
  it('upserts, reads and deletes a recipient, leaving no contact data', async () => {
    const u = user();
    const { recipient } = await client.recipients.upsertRecipient({
      recipient: {
        userId: u,
        email: 'ada@example.com',
        phone: '+15550001234',
        timeZone: 'Europe/London',
        locale: 'en-GB',
        data: { plan: 'pro' },
      },
    });
    expect(recipient).toMatchObject({
      userId: u,
      email: 'ada@example.com',
      timeZone: 'Europe/London',
    });
    await client.recipients.registerPushToken({ userId: u, token: 'device-a' });
    const { recipient: withTokens } = await client.recipients.registerPushToken({
      userId: u,
      token: 'device-b',
    });
    expect(withTokens?.pushTokens.map((p) => p.token)).toEqual(['device-b', 'device-a']);

    // An upsert replaces the fields and keeps the tokens.
    const { recipient: changed } = await client.recipients.upsertRecipient({
      recipient: { userId: u, email: 'ada@new.example.com' },
    });
    expect(changed).toMatchObject({ email: 'ada@new.example.com', phone: '', locale: '' });
    expect(changed?.pushTokens).toHaveLength(2);

    expect((await client.recipients.deleteRecipient({ userId: u })).deleted).toBe(true);
    expect((await client.recipients.deleteRecipient({ userId: u })).deleted).toBe(false);
    expect((await rejection(client.recipients.getRecipient({ userId: u }))).code).toBe(
      Code.NotFound,
    );
    const { rows } = await t.db.pool.query(
      `select 1 from recipient where user_id = $1 union all select 1 from push_token where user_id = $1`,
      [u],
    );
    expect(rows).toEqual([]);
  });

  it('names every bad field', async () => {
    const err = await rejection(
      client.recipients.upsertRecipient({
        recipient: {
          userId: '',
          email: 'not-an-email',
          phone: '555',
          timeZone: 'Mars/Olympus',
          locale: 'not a locale!',
        },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violatedFields(err).sort()).toEqual(
      [
        'recipient.email',
        'recipient.locale',
        'recipient.phone',
        'recipient.time_zone',
        'recipient.user_id',
      ].sort(),
    );
    // A UTC offset is no IANA zone, though Intl takes it: it has no daylight saving.
    for (const timeZone of ['+02:00', '-05:00']) {
      const offset = await rejection(
        client.recipients.upsertRecipient({ recipient: { userId: 'u-offset', timeZone } }),
      );
      expect(violatedFields(offset), timeZone).toEqual(['recipient.time_zone']);
    }
    const token = await rejection(
      client.recipients.registerPushToken({ userId: 'u', token: 'a b' }),
    );
    expect(violatedFields(token)).toEqual(['token']);
  });
});

describe('Send without an address', () => {
  it('uses the recipient’s email, and the direct address still wins', async () => {
    const u = user();
    await client.recipients.upsertRecipient({
      recipient: { userId: u, email: 'grace@example.com' },
    });
    const viaRecipient = await client.send({
      userId: u,
      channel: Channel.EMAIL,
      content: { subject: 's', body: 'b' },
    });
    expect((await finalStatus(viaRecipient.id)).to).toBe('grace@example.com');
    const direct = await client.send({
      userId: u,
      channel: Channel.EMAIL,
      to: 'other@example.com',
      content: { subject: 's', body: 'b' },
    });
    expect((await finalStatus(direct.id)).to).toBe('other@example.com');
  });

  it('fails with FailedPrecondition naming what is missing, and stores nothing', async () => {
    const u = user();
    await client.recipients.upsertRecipient({ recipient: { userId: u, email: 'x@example.com' } });
    const err = await rejection(
      client.send({ userId: u, channel: Channel.SMS, content: { body: 'b' } }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe(
      `user "${u}" has no phone number for sms: register one with RecipientService or pass to`,
    );
    const unknown = await rejection(
      client.send({ userId: user(), channel: Channel.PUSH, content: { title: 't', body: 'b' } }),
    );
    expect(unknown.code).toBe(Code.FailedPrecondition);
    const { rows } = await t.db.pool.query('select 1 from notification where user_id = $1', [u]);
    expect(rows).toEqual([]);
  });

  it('pushes to the latest token and forgets one the provider reports unregistered', async () => {
    const u = user();
    await client.recipients.registerPushToken({ userId: u, token: 'old-device' });
    await client.recipients.registerPushToken({ userId: u, token: 'dead-device' });
    fcm.answerSends('unregistered'); // the first send (to the latest token); then success
    const first = await client.send({
      userId: u,
      channel: Channel.PUSH,
      content: { title: 't', body: 'b' },
    });
    const failed = await finalStatus(first.id);
    expect(failed).toMatchObject({ status: NotificationStatus.FAILED, to: 'dead-device' });
    await expect
      .poll(async () =>
        (await client.recipients.getRecipient({ userId: u })).recipient?.pushTokens.map(
          (p) => p.token,
        ),
      )
      .toEqual(['old-device']);

    const next = await client.send({
      userId: u,
      channel: Channel.PUSH,
      content: { title: 't', body: 'b' },
    });
    expect(await finalStatus(next.id)).toMatchObject({
      status: NotificationStatus.DELIVERED,
      to: 'old-device',
    });
  });
});

describe('recipient reads', () => {
  it('share one statement when concurrent, each caller getting its own recipient', async () => {
    const { pool, statements } = countingPool(t.db.pool);
    const store = createRecipientStore(pool);
    const tenant = `reads-${randomUUID()}`;
    const users = Array.from({ length: 50 }, (_, i) => `reader-${i}`);
    for (const u of users.slice(0, 25)) {
      await store.upsert(tenant, {
        userId: u,
        email: `${u}@example.com`,
        phone: null,
        timeZone: null,
        locale: null,
        data: {},
      });
    }
    await store.registerPushToken(tenant, 'reader-0', 'device-0');
    statements.count = 0;

    const read = await Promise.all(users.map((u) => store.get(tenant, u)));

    // Every call arrived in the same event-loop turn: they all go in one statement.
    expect(statements.count).toBe(1);
    expect(read.map((r) => r?.email ?? null)).toEqual(
      users.map((u, i) => (i < 25 ? `${u}@example.com` : null)),
    );
    expect(read[0]?.pushTokens.map((p) => p.token)).toEqual(['device-0']);
  });
});
