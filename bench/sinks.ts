// Local provider sinks for benchmarks: an SMTP server that accepts every message, and one HTTP
// server that answers like Twilio's Messages API, Google's OAuth token endpoint with FCM's v1 send,
// and a webhook receiver. Writes the providers JSON for Herald (HERALD_PROVIDERS_FILE) pointing at
// them, then runs until Ctrl-C, printing how many messages each sink took. Loopback only.
//
//   node dist/bench/sinks.js --out /tmp/herald-providers.json
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { SMTPServer } from 'smtp-server';

const { values } = parseArgs({
  options: { out: { type: 'string', default: 'herald-providers.json' } },
});

const counts = { smtp: 0, twilio: 0, fcm: 0, webhook: 0, tokens: 0 };

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  size: 10 * 1024 * 1024,
  onData(stream, _session, callback) {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      counts.smtp += 1;
      callback();
    });
  },
});

let seq = 0;
const api = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const url = req.url ?? '';
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    seq += 1;
    if (/^\/2010-04-01\/Accounts\/[^/]+\/Messages\.json$/.test(url)) {
      counts.twilio += 1;
      json(201, { sid: `SM${seq}`, status: 'queued' });
    } else if (url === '/token') {
      counts.tokens += 1;
      json(200, { access_token: `tok-${seq}`, expires_in: 3600, token_type: 'Bearer' });
    } else if (/^\/v1\/projects\/[^/]+\/messages:send$/.test(url)) {
      counts.fcm += 1;
      json(200, { name: `projects/bench/messages/${seq}` });
    } else if (url === '/hook') {
      counts.webhook += 1;
      res.writeHead(200);
      res.end();
    } else {
      json(404, { error: 'unknown path' });
    }
  });
});

function listen(server: { listen(port: number, host: string, cb: () => void): unknown }) {
  return new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
}

await listen(smtp.server);
await listen(api);
const smtpPort = (smtp.server.address() as AddressInfo).port;
const base = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

const providers = {
  email: [
    {
      type: 'smtp',
      name: 'smtp-sink',
      host: '127.0.0.1',
      port: smtpPort,
      from: 'bench@example.com',
      maxConnections: 10,
    },
  ],
  sms: [
    {
      type: 'twilio',
      name: 'twilio-sink',
      baseUrl: base,
      accountSid: 'ACbench',
      authToken: 'bench-token',
      from: '+15550100000',
    },
  ],
  push: [
    {
      type: 'fcm',
      name: 'fcm-sink',
      projectId: 'bench',
      clientEmail: 'bench@bench.iam.gserviceaccount.com',
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      tokenUri: `${base}/token`,
      baseUrl: base,
    },
  ],
  webhook: [
    {
      type: 'webhook',
      name: 'webhook-sink',
      url: `${base}/hook`,
      secret: 'bench-secret-0123456789',
    },
  ],
};
writeFileSync(values.out, JSON.stringify(providers, null, 2));
console.log(`sinks: SMTP on 127.0.0.1:${smtpPort}, HTTP on ${base}; providers in ${values.out}`);

const report = () => console.log(`sinks received ${JSON.stringify(counts)}`);
const timer = setInterval(report, 10_000);
process.once('SIGINT', () => {
  clearInterval(timer);
  report();
  smtp.close(() => api.close(() => process.exit(0)));
});
