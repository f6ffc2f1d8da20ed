/**
 * A fake of Google's side of FCM HTTP v1, at the wire: an OAuth token endpoint that really
 * verifies the service account's JWT assertion (RS256 signature and claims) and a messages:send
 * endpoint that accepts only the access tokens it issued and answers as the test programs it.
 *
 * ```ts
 * const fake = await startFcmFake({ publicKey, clientEmail, projectId, now });
 * // provider config: { tokenUri: fake.tokenUri, baseUrl: fake.url, ... }
 * fake.answerSends('unauthenticated', 'success');   // one-shot answers, then 'success'
 * fake.answerTokens('hold'); fake.releaseTokens();   // delay token responses
 * fake.sends[0].body.message.token; fake.tokenRequests; fake.tokenRejections;
 * await fake.close();
 * ```
 */
import { Buffer } from 'node:buffer';
import { verify, type KeyLike } from 'node:crypto';
import http from 'node:http';
import { closeServer, listenOnFreePort } from '../http-server.js';

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';

/**
 * How messages:send answers a request that passed authentication. `unauthenticated` answers 401
 * and revokes the token presented; `quota-exceeded` sends `Retry-After: 30`; `hang` never answers.
 */
export type SendAnswer =
  | 'success'
  | 'unregistered'
  | 'invalid-argument'
  | 'sender-id-mismatch'
  | 'unauthenticated'
  | 'third-party-auth-error'
  | 'permission-denied'
  | 'quota-exceeded'
  | 'unavailable'
  | 'internal'
  | 'hang';

/**
 * How the token endpoint answers a request whose assertion verified. `invalid-grant` is a 400
 * (e.g. a deleted service account); `hold` keeps the request open until `releaseTokens()`.
 */
export type TokenAnswer = 'ok' | 'invalid-grant' | 'hold';

export interface RecordedSend {
  path: string;
  /** The bearer token presented ('' when none). */
  token: string;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: {
    message?: {
      token?: unknown;
      notification?: Record<string, unknown>;
      data?: Record<string, unknown>;
    };
  };
}

export interface FcmFake {
  /** `http://127.0.0.1:<port>`: the provider's baseUrl. */
  url: string;
  /** `<url>/token`: the provider's tokenUri, and the audience the assertion must name. */
  tokenUri: string;
  /** Token requests received, verified or not. */
  readonly tokenRequests: number;
  /** Why each rejected assertion was rejected; empty when every JWT verified. */
  readonly tokenRejections: readonly string[];
  /** Access tokens issued, oldest first. */
  readonly issuedTokens: readonly string[];
  /** Token requests whose client went away before they were answered. */
  readonly abandonedTokenRequests: number;
  /** Every messages:send request, oldest first, including those refused. */
  readonly sends: readonly RecordedSend[];
  /** One-shot answers for the next sends, in order; afterwards every send succeeds. */
  answerSends(...answers: SendAnswer[]): void;
  /** One-shot answers for the next token requests, in order; afterwards tokens are issued. */
  answerTokens(...answers: TokenAnswer[]): void;
  /** Issues tokens to every held token request. */
  releaseTokens(): void;
  /** Ends every open connection (hanging ones included) and stops listening. */
  close(): Promise<void>;
}

export interface FcmFakeOptions {
  /** Verifies the assertion's signature. */
  publicKey: KeyLike;
  /** The expected `iss`. */
  clientEmail: string;
  projectId: string;
  /** The fake's clock for exp / iat checks and token expiry; share the provider's. */
  now?: () => number;
  /** `expires_in` of issued tokens, in seconds. */
  expiresIn?: number;
}

export async function startFcmFake(options: FcmFakeOptions): Promise<FcmFake> {
  const now = options.now ?? (() => Date.now());
  const expiresIn = options.expiresIn ?? 3600;
  const sendPath = `/v1/projects/${options.projectId}/messages:send`;
  const tokenRejections: string[] = [];
  const issuedTokens: string[] = [];
  const sends: RecordedSend[] = [];
  const sendAnswers: SendAnswer[] = [];
  const tokenAnswers: TokenAnswer[] = [];
  const held: http.ServerResponse[] = [];
  /** Live access tokens and when they expire. */
  const valid = new Map<string, number>();
  let tokenRequests = 0;
  let abandonedTokenRequests = 0;
  let tokenUri = '';

  const issue = (res: http.ServerResponse) => {
    const token = `ya29.fake-${issuedTokens.length + 1}`;
    issuedTokens.push(token);
    valid.set(token, now() + expiresIn * 1000);
    json(res, 200, { access_token: token, expires_in: expiresIn, token_type: 'Bearer' });
  };

  const onToken = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    tokenRequests += 1;
    res.on('close', () => {
      if (!res.writableEnded) abandonedTokenRequests += 1;
    });
    const form = new URLSearchParams(body);
    const problem =
      req.headers['content-type'] !== 'application/x-www-form-urlencoded'
        ? 'not a form'
        : form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer'
          ? 'wrong grant_type'
          : assertionProblem(form.get('assertion') ?? '', options, tokenUri, now());
    if (problem !== null) {
      tokenRejections.push(problem);
      json(res, 400, { error: 'invalid_grant', error_description: `Invalid JWT: ${problem}` });
      return;
    }
    const answer = tokenAnswers.shift() ?? 'ok';
    if (answer === 'hold') held.push(res);
    else if (answer === 'invalid-grant') {
      json(res, 400, {
        error: 'invalid_grant',
        error_description: 'Invalid grant: account not found',
      });
    } else issue(res);
  };

  const onSend = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const parsed = parseJson(body) as RecordedSend['body'] | undefined;
    sends.push({ path: req.url ?? '', token, body: parsed ?? {} });
    const expiresAt = valid.get(token);
    if (expiresAt === undefined || expiresAt <= now()) {
      googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
      return;
    }
    const message = parsed?.message;
    const data = message?.data ?? {};
    if (
      typeof message?.token !== 'string' ||
      message.token === '' ||
      typeof data !== 'object' ||
      Object.values(data).some((v) => typeof v !== 'string')
    ) {
      googleError(res, 400, 'INVALID_ARGUMENT', 'Invalid message', 'INVALID_ARGUMENT');
      return;
    }
    const answer = sendAnswers.shift() ?? 'success';
    switch (answer) {
      case 'success':
        json(res, 200, { name: `projects/${options.projectId}/messages/${sends.length}` });
        return;
      case 'unregistered':
        googleError(res, 404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED');
        return;
      case 'invalid-argument':
        googleError(
          res,
          400,
          'INVALID_ARGUMENT',
          'The registration token is not a valid FCM registration token',
          'INVALID_ARGUMENT',
        );
        return;
      case 'sender-id-mismatch':
        googleError(res, 403, 'PERMISSION_DENIED', 'SenderId mismatch', 'SENDER_ID_MISMATCH');
        return;
      case 'unauthenticated':
        valid.delete(token);
        googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
        return;
      case 'third-party-auth-error':
        googleError(res, 401, 'UNAUTHENTICATED', 'Auth error from APNS', 'THIRD_PARTY_AUTH_ERROR');
        return;
      case 'permission-denied':
        googleError(
          res,
          403,
          'PERMISSION_DENIED',
          "Permission 'cloudmessaging.messages.create' denied",
        );
        return;
      case 'quota-exceeded':
        googleError(res, 429, 'RESOURCE_EXHAUSTED', 'Quota exceeded', 'QUOTA_EXCEEDED', {
          'retry-after': '30',
        });
        return;
      case 'unavailable':
        googleError(
          res,
          503,
          'UNAVAILABLE',
          'The service is currently unavailable.',
          'UNAVAILABLE',
        );
        return;
      case 'internal':
        googleError(res, 500, 'INTERNAL', 'Internal error encountered.', 'INTERNAL');
        return;
      case 'hang':
        return;
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'POST' && req.url === '/token') onToken(req, res, body);
      else if (req.method === 'POST' && req.url === sendPath) onSend(req, res, body);
      else googleError(res, 404, 'NOT_FOUND', `no route for ${req.method} ${req.url}`);
    });
  });
  const port = await listenOnFreePort(server);
  const url = `http://127.0.0.1:${port}`;
  tokenUri = `${url}/token`;
  let closing: Promise<void> | null = null;

  return {
    url,
    tokenUri,
    get tokenRequests() {
      return tokenRequests;
    },
    tokenRejections,
    issuedTokens,
    get abandonedTokenRequests() {
      return abandonedTokenRequests;
    },
    sends,
    answerSends: (...answers) => {
      sendAnswers.push(...answers);
    },
    answerTokens: (...answers) => {
      tokenAnswers.push(...answers);
    },
    releaseTokens: () => {
      for (const res of held.splice(0)) if (!res.destroyed) issue(res);
    },
    close: () => {
      if (closing === null) {
        closing = closeServer(server);
        // Held and hanging requests, and fetch's keep-alive connections, would keep it open.
        server.closeAllConnections();
      }
      return closing;
    },
  };
}

/** Null when `assertion` is a JWT Google would accept from this service account; else why not. */
function assertionProblem(
  assertion: string,
  options: FcmFakeOptions,
  audience: string,
  nowMs: number,
): string | null {
  const parts = assertion.split('.');
  if (parts.length !== 3) return 'not a JWT';
  const [header, claims, signature] = parts as [string, string, string];
  const signed = verify(
    'sha256',
    Buffer.from(`${header}.${claims}`),
    options.publicKey,
    Buffer.from(signature, 'base64url'),
  );
  if (!signed) return 'bad signature';
  const h = parseJson(Buffer.from(header, 'base64url').toString('utf8')) as
    Record<string, unknown> | undefined;
  if (h?.alg !== 'RS256' || h.typ !== 'JWT') return 'bad header';
  const c = parseJson(Buffer.from(claims, 'base64url').toString('utf8')) as
    Record<string, unknown> | undefined;
  if (c === undefined) return 'bad claims';
  if (c.iss !== options.clientEmail) return 'wrong iss';
  if (c.aud !== audience) return 'wrong aud';
  if (c.scope !== FCM_SCOPE) return 'wrong scope';
  if (typeof c.iat !== 'number' || typeof c.exp !== 'number') return 'no iat / exp';
  if (c.exp !== c.iat + 3600) return 'exp is not iat + 3600';
  const nowS = nowMs / 1000;
  if (c.iat > nowS + 60) return 'iat in the future';
  if (c.exp <= nowS) return 'expired';
  return null;
}

function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Google's error body; with `errorCode`, an FcmError detail as FCM adds. */
function googleError(
  res: http.ServerResponse,
  code: number,
  status: string,
  message: string,
  errorCode?: string,
  headers?: Record<string, string>,
): void {
  const details = errorCode === undefined ? [] : [{ '@type': FCM_ERROR_TYPE, errorCode }];
  json(res, code, { error: { code, message, status, details } }, headers);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
