import { execFileSync } from 'node:child_process';
import { it } from 'vitest';
import { createNotificationStore } from '../../src/infra/postgres/notification-store.js';
import { draftNotification } from '../support/fixtures.js';
import { startTestHerald } from '../support/herald.js';

it('readme', async () => {
  const t = await startTestHerald();
  const store = createNotificationStore(t.db.pool);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const n = draftNotification({ tenantId: t.config.tenant, channel: i === 0 ? 'sms' : 'email', to: i === 0 ? '+15550001111' : 'a@example.com' });
    await store.insert(n, null);
    await store.claim(n.id, 1, 30000);
    await store.complete(n.id, 1, { status: 'FAILED', provider: 'ses', providerMessageId: null, error: 'ses: 550 mailbox unavailable', nextAttemptAt: null });
    ids.push(n.id);
  }
  const curl = (path: string, data: string) => {
    const out = execFileSync('npx', ['buf', 'curl', '--protocol', 'grpc', '--http2-prior-knowledge', `${t.h2cUrl}/${path}`, '-d', data], { encoding: 'utf8' });
    console.log(`### ${path} ${data}\n${out}`);
  };
  curl('herald.v1.DeadLetterService/ListDeadLetters', '{"filter":{"channels":["CHANNEL_EMAIL"],"errorContains":"mailbox"},"pageSize":20}');
  curl('herald.v1.DeadLetterService/GetDeadLetter', JSON.stringify({ id: ids[0] }));
  curl('herald.v1.DeadLetterService/ReplayDeadLetters', JSON.stringify({ ids: [ids[1]] }));
  curl('herald.v1.DeadLetterService/ReplayDeadLetters', JSON.stringify({ ids: [ids[1]] }));
  curl('herald.v1.DeadLetterService/ReplayDeadLetters', '{"filter":{"errorContains":"550","deadLetteredAfter":"2020-01-01T00:00:00Z"}}');
  curl('herald.v1.DeadLetterService/PurgeDeadLetters', '{"filter":{}}');
  try { curl('herald.v1.DeadLetterService/PurgeDeadLetters', '{}'); } catch (e) { console.log('ERR', (e as {stderr: string}).stderr); }
  await new Promise((r) => setTimeout(r, 1000));
  curl('herald.v1.NotificationService/GetNotification', JSON.stringify({ id: ids[1] }));
  await t.stop();
});
