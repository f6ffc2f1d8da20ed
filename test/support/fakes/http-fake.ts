/**
 * A small HTTP/1.1 server standing in for a third-party HTTP API (Twilio, FCM, a webhook
 * receiver) at the wire: it records every request and answers as the test tells it to.
 *
 * ```ts
 * const fake = await startHttpFake();            // listens on 127.0.0.1, a free port
 * fake.respond({ status: 201, body: { sid: 'SM1' } });      // the answer to every request…
 * fake.enqueue({ status: 503 }, 'hang');         // …except these, used once each, first
 * fake.respond((req) => ({ status: req.path === '/a' ? 200 : 404 }));    // or computed
 * await provider.deliver(n, signal);             // pointed at fake.url
 * fake.requests[0];                              // { method, path, headers, body }
 * await fake.received(1);                        // waits until a first request has arrived
 * await fake.close();        // ends hanging and keep-alive connections too; safe to call twice
 * ```
 *
 * An answer is `{ status, headers?, body?, delayMs? }` (delayMs: answer that much later) — `body` is sent as JSON (content-type
 * application/json unless `headers` sets one), or as is when it is a string or a Buffer — or
 * `'hang'`: never answer; the request stays open until the client gives up or the fake closes.
 * With nothing configured the fake answers 500, so a test that forgot to configure it fails loudly.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import { closeServer, listenOnFreePort } from '../http-server.js';

export interface RecordedRequest {
  method: string;
  /** The request target: path and query, e.g. `/2010-04-01/Accounts/AC1/Messages.json`. */
  path: string;
  /** Lower-cased names, as node:http parses them. */
  headers: http.IncomingHttpHeaders;
  /** The raw body, decoded as UTF-8 ('' when empty). */
  body: string;
}

export type FakeAnswer =
  { status: number; headers?: Record<string, string>; body?: unknown; delayMs?: number } | 'hang';

/** Computes the answer to a request; `index` is its 0-based position among all requests. */
export type Responder = (request: RecordedRequest, index: number) => FakeAnswer;

export interface HttpFake {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  url: string;
  /** Every request received so far, oldest first (recorded once its body has arrived). */
  readonly requests: readonly RecordedRequest[];
  /** The answer to every request not served from the queue (replaces the previous one). */
  respond(answer: FakeAnswer | Responder): void;
  /** One-shot answers, served in order before the `respond` answer. */
  enqueue(...answers: (FakeAnswer | Responder)[]): void;
  /** Resolves with the `count`-th request (1-based) once it has arrived. */
  received(count?: number): Promise<RecordedRequest>;
  /** Ends every open connection (hanging ones included) and stops listening; idempotent. */
  close(): Promise<void>;
}

export async function startHttpFake(): Promise<HttpFake> {
  const requests: RecordedRequest[] = [];
  const queue: (FakeAnswer | Responder)[] = [];
  let fallback: FakeAnswer | Responder = {
    status: 500,
    body: { error: 'http-fake: no answer configured for this request' },
  };
  const waiters: { count: number; resolve: (request: RecordedRequest) => void }[] = [];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      const index = requests.push(request) - 1;
      const chosen = queue.shift() ?? fallback;
      const answer = typeof chosen === 'function' ? chosen(request, index) : chosen;
      // Answer before waking waiters, so a test that awaits `received` then the client's
      // response never races the fake's own reply.
      if (answer !== 'hang') {
        if (answer.delayMs) setTimeout(() => send(res, answer), answer.delayMs);
        else send(res, answer);
      }
      for (const waiter of waiters.filter((w) => requests.length >= w.count)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(requests[waiter.count - 1] ?? request);
      }
    });
  });
  const port = await listenOnFreePort(server);
  // Shared, so a test may close the fake (to refuse connections) and its cleanup close it again.
  let closing: Promise<void> | null = null;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respond: (answer) => {
      fallback = answer;
    },
    enqueue: (...answers) => {
      queue.push(...answers);
    },
    received: (count = 1) => {
      const already = requests[count - 1];
      if (already) return Promise.resolve(already);
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    close: () => {
      if (closing === null) {
        closing = closeServer(server);
        // fetch keeps connections alive and 'hang' never ends its request: without this, close()
        // would wait for the client's idle timeout or forever.
        server.closeAllConnections();
      }
      return closing;
    },
  };
}

function send(res: http.ServerResponse, answer: Exclude<FakeAnswer, 'hang'>): void {
  const headers: Record<string, string> = { ...answer.headers };
  let payload: string | Buffer = '';
  if (typeof answer.body === 'string' || Buffer.isBuffer(answer.body)) {
    payload = answer.body;
  } else if (answer.body !== undefined) {
    payload = JSON.stringify(answer.body);
    const hasType = Object.keys(headers).some((name) => name.toLowerCase() === 'content-type');
    if (!hasType) headers['content-type'] = 'application/json';
  }
  if (res.destroyed) return; // the client gave up while a delayed answer waited
  res.writeHead(answer.status, headers);
  res.end(payload);
}
