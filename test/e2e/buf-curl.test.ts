/**
 * buf curl against a real Herald's h2c port, with no .proto files: everything it knows about the
 * API comes from gRPC server reflection.
 */
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBufCurl, type BufCurl } from '../support/buf.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface NotificationJson {
  notification: { id: string; userId: string; channel: string; status: string; version: string };
  events: { status: string; version: string }[];
}

let t: TestHerald;
let bufCurl: BufCurl;

beforeAll(async () => {
  bufCurl = await createBufCurl();
  t = await startTestHerald();
});

afterAll(async () => {
  await t?.stop();
  await bufCurl?.close();
});

/** `buf curl -d <json>` of a NotificationService method on Herald's h2c port. */
const callRpc = (method: string, json: string) =>
  bufCurl('-d', json, `${t.h2cUrl}/herald.v1.NotificationService/${method}`);

describe('herald api via buf curl', () => {
  it('lists every Herald service, health and reflection when buf curl asks with --list-services', async () => {
    const result = await bufCurl('--list-services', t.h2cUrl);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout.trim().split('\n').sort()).toEqual([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'herald.v1.AdminService',
      'herald.v1.DeadLetterService',
      'herald.v1.InboxService',
      'herald.v1.NotificationService',
      'herald.v1.PreferenceService',
      'herald.v1.RecipientService',
      'herald.v1.TemplateService',
    ]);
  });

  it('lists every Herald method when buf curl asks with --list-methods', async () => {
    const result = await bufCurl('--list-methods', t.h2cUrl);

    expect(result).toMatchObject({ code: 0, stderr: '' });
    const methods = result.stdout.trim().split('\n');
    expect(methods.filter((m) => m.startsWith('herald.')).sort()).toEqual([
      'herald.v1.AdminService/CreateApiKey',
      'herald.v1.AdminService/ListApiKeys',
      'herald.v1.AdminService/RevokeApiKey',
      'herald.v1.DeadLetterService/GetDeadLetter',
      'herald.v1.DeadLetterService/ListDeadLetters',
      'herald.v1.DeadLetterService/PurgeDeadLetters',
      'herald.v1.DeadLetterService/ReplayDeadLetters',
      'herald.v1.InboxService/GetUnreadCount',
      'herald.v1.InboxService/ListInbox',
      'herald.v1.InboxService/MarkAllRead',
      'herald.v1.InboxService/MarkInbox',
      'herald.v1.NotificationService/CancelNotification',
      'herald.v1.NotificationService/DeliverNow',
      'herald.v1.NotificationService/GetNotification',
      'herald.v1.NotificationService/GetStats',
      'herald.v1.NotificationService/ListNotifications',
      'herald.v1.NotificationService/Send',
      'herald.v1.NotificationService/SendBatch',
      'herald.v1.NotificationService/WatchNotifications',
      'herald.v1.PreferenceService/GetPreferences',
      'herald.v1.PreferenceService/GetTenantPreferences',
      'herald.v1.PreferenceService/UpdatePreferences',
      'herald.v1.PreferenceService/UpdateTenantPreferences',
      'herald.v1.RecipientService/DeleteRecipient',
      'herald.v1.RecipientService/GetRecipient',
      'herald.v1.RecipientService/RegisterPushToken',
      'herald.v1.RecipientService/RemovePushToken',
      'herald.v1.RecipientService/UpsertRecipient',
      'herald.v1.TemplateService/ArchiveTemplate',
      'herald.v1.TemplateService/CreateTemplate',
      'herald.v1.TemplateService/GetTemplate',
      'herald.v1.TemplateService/ListTemplates',
      'herald.v1.TemplateService/PreviewTemplate',
      'herald.v1.TemplateService/UpdateTemplate',
    ]);
  });

  it('prints an id, then GetNotification shows it DELIVERED, when Send is called from JSON', async () => {
    const sent = await callRpc(
      'Send',
      '{"userId":"u-buf","channel":"CHANNEL_IN_APP","content":{"title":"t","body":"b"}}',
    );

    expect(sent).toMatchObject({ code: 0, stderr: '' });
    const { id, status } = JSON.parse(sent.stdout) as { id: string; status: string };
    expect(id).toMatch(UUID);
    expect(status).toBe('NOTIFICATION_STATUS_PENDING');

    let got: NotificationJson | undefined;
    await expect
      .poll(
        async () => {
          const r = await callRpc('GetNotification', JSON.stringify({ id }));
          expect(r).toMatchObject({ code: 0, stderr: '' });
          got = JSON.parse(r.stdout) as NotificationJson;
          return got.notification.status;
        },
        { timeout: 30_000, interval: 100 },
      )
      .toBe('NOTIFICATION_STATUS_DELIVERED');
    expect(got?.notification).toMatchObject({
      id,
      userId: 'u-buf',
      channel: 'CHANNEL_IN_APP',
      version: '2',
    });
    // in_app has no PROCESSING step: its worker marks it DELIVERED as it claims it.
    expect(got?.events.map((e) => [e.status, e.version])).toEqual([
      ['NOTIFICATION_STATUS_PENDING', '1'],
      ['NOTIFICATION_STATUS_DELIVERED', '2'],
    ]);
  });

  it('exits with INVALID_ARGUMENT and names the field when Send lacks user_id', async () => {
    const result = await callRpc('Send', '{"channel":"CHANNEL_IN_APP","content":{"title":"t"}}');

    // buf curl exits with the gRPC code shifted left by three bits.
    expect(result.code).toBe(Code.InvalidArgument << 3);
    expect(result.stderr).toContain('invalid_argument');
    expect(result.stderr).toContain('user_id');
  });

  it('exits with NOT_FOUND when GetNotification names an unknown id', async () => {
    const result = await callRpc(
      'GetNotification',
      '{"id":"00000000-0000-7000-8000-000000000000"}',
    );

    expect(result.code).toBe(Code.NotFound << 3);
    expect(result.stderr).toContain('not_found');
  });
});
