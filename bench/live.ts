// Live-update latency through the GraphQL gateway: N WebSocket subscribers (graphql-ws), each
// following one user's feed (`myNotifications` with that user's token), then one notification per
// user sent over gRPC. Measures, for every status change a subscriber receives, the time from the
// change's commit in PostgreSQL (the notification's updatedAt) to its arrival. Same machine, same
// clock. `node dist/bench/live.js --help`.
import { parseArgs } from 'node:util';
import { Channel, createHeraldClient } from '@herald/client';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { DEVELOPMENT_TOKEN_SECRET } from '../src/config.js';
import { issueUserToken } from '../src/infra/auth/user-tokens.js';
import { requireSupportedNode } from '../src/runtime.js';

const usage = `Usage: node dist/bench/live.js [options]
  --gateway <url>        GraphQL endpoint (default ws://127.0.0.1:8083/graphql)
  --api <url>            api h2c URL for sending (default http://127.0.0.1:8080)
  --api-key <key>        API key with the send scope (default: $HERALD_API_KEY)
  --tenant <id>          tenant of the API key (default dev)
  --token-secret <s>     HERALD_TOKEN_SECRET of the api (default: $HERALD_TOKEN_SECRET or the development one)
  --subscribers <n>      WebSocket subscribers, one user each (default 1000)
  --rate <n>             notifications sent per second, one per user (default 200)`;

requireSupportedNode('bench:live');
const { values } = parseArgs({
  options: {
    gateway: { type: 'string', default: 'ws://127.0.0.1:8083/graphql' },
    api: { type: 'string', default: 'http://127.0.0.1:8080' },
    'api-key': { type: 'string', default: process.env.HERALD_API_KEY ?? '' },
    tenant: { type: 'string', default: 'dev' },
    'token-secret': {
      type: 'string',
      default: process.env.HERALD_TOKEN_SECRET ?? DEVELOPMENT_TOKEN_SECRET,
    },
    subscribers: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '200' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const n = Number(values.subscribers);
const rate = Number(values.rate);
for (const url of [values.gateway, values.api]) {
  if (!/^(ws|http)s?:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url)) {
    console.error(`live bench: ${url} is not a loopback address`);
    process.exit(2);
  }
}

const run = `${Date.now().toString(36)}`;
const users = Array.from({ length: n }, (_, i) => `live-${run}-${i}`);
const latencies: number[] = [];
const delivered = new Set<string>();
const clients: Client[] = [];
let ready = 0;

console.error(`opening ${n} subscriptions…`);
await Promise.all(
  users.map(
    (user) =>
      new Promise<void>((resolve, reject) => {
        const token = issueUserToken({
          master: values['token-secret'],
          tenantId: values.tenant,
          userId: user,
          ttlSeconds: 3600,
        });
        const client = createClient({
          url: values.gateway,
          webSocketImpl: WebSocket,
          connectionParams: { authorization: `Bearer ${token}` },
          retryAttempts: 0,
          lazy: false,
          on: { connected: () => resolve(), error: (e) => reject(e as Error) },
        });
        clients.push(client);
        client.subscribe<{
          myNotifications: { id: string; status: string; updatedAt: string };
        }>(
          { query: 'subscription { myNotifications { id status updatedAt } }' },
          {
            next: ({ data }) => {
              const got = data?.myNotifications;
              if (!got) return;
              latencies.push(Date.now() - Date.parse(got.updatedAt));
              if (got.status === 'DELIVERED') delivered.add(got.id);
            },
            error: (e) => console.error('subscription error', e),
            complete: () => undefined,
          },
        );
        ready += 1;
      }),
  ),
);
// Subscriptions are live once the gateway has opened their api streams; give them a moment.
await new Promise((r) => setTimeout(r, 2_000));
console.error(`${ready} subscribed; sending ${n} notifications at ${rate}/s`);

const herald = createHeraldClient({ baseUrl: values.api, apiKey: values['api-key'] || undefined });
const started = Date.now();
const sent: string[] = [];
await Promise.all(
  users.map(async (user, i) => {
    await new Promise((r) => setTimeout(r, Math.max(0, started + (i * 1000) / rate - Date.now())));
    const res = await herald.send({
      userId: user,
      channel: Channel.IN_APP,
      content: { title: 'live', body: `n${i}` },
    });
    sent.push(res.id);
  }),
);
const deadline = Date.now() + 30_000;
while (delivered.size < sent.length && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
}

const sorted = [...latencies].sort((a, b) => a - b);
const pct = (p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const result = {
  bench: 'herald-live',
  node: process.version,
  subscribers: n,
  rate,
  sent: sent.length,
  deliveredSeen: delivered.size,
  updates: sorted.length,
  commitToSubscriberMs: { p50: pct(50), p95: pct(95), p99: pct(99), max: sorted.at(-1) ?? NaN },
};
console.log(
  `subscribers ${n}, sent ${sent.length}, DELIVERED seen ${delivered.size}, updates ${sorted.length}\n` +
    `commit → subscriber ms: p50 ${result.commitToSubscriberMs.p50}, p95 ${result.commitToSubscriberMs.p95}, p99 ${result.commitToSubscriberMs.p99}, max ${result.commitToSubscriberMs.max}`,
);
console.log(JSON.stringify(result));
for (const c of clients) void c.dispose();
herald.close();
process.exit(delivered.size === sent.length ? 0 : 1);
