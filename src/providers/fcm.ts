/**
 * The `fcm` push provider: Firebase Cloud Messaging's HTTP v1 API (or anything that speaks it),
 * authenticated as a Google service account. The provider signs its own OAuth JWT (RS256) with
 * node:crypto, trades it for an access token, caches that token until shortly before it expires
 * and shares one token request among concurrent deliveries.
 *
 * Classification: a dead or malformed device token (UNREGISTERED, INVALID_ARGUMENT,
 * SENDER_ID_MISMATCH) is permanent; everything that says "our credentials or FCM are at fault" —
 * the token endpoint refusing us, a 401 that a fresh access token does not cure, quota, 5xx — is
 * transient, so the notification is retried (or fails over) rather than dropped.
 */
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import type { Notification } from '../domain/notification.js';
import type { DeliveryResult, Provider } from '../domain/ports.js';
import { failureOf, httpRequest, retryAfterMs, type HttpResponse } from './http.js';
import { echoesOf, redactEchoes } from './redact.js';

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const JWT_LIFETIME_S = 3600;
/** Refresh this long before the access token's expiry, so a token never expires mid-request. */
const REFRESH_MARGIN_MS = 60_000;
const FCM_ERROR_TYPE = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';
/** Codes that blame the device token (or the message built for it): retrying cannot help. */
const PERMANENT_CODES: ReadonlySet<string> = new Set([
  'UNREGISTERED',
  'INVALID_ARGUMENT',
  'SENDER_ID_MISMATCH',
]);
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  'QUOTA_EXCEEDED',
  'UNAVAILABLE',
  'INTERNAL',
  'THIRD_PARTY_AUTH_ERROR',
]);

/**
 * FCM provider settings. Credentials come either inline (`clientEmail` + `privateKey`, an RSA PEM)
 * or from `serviceAccountFile`, a Google service-account JSON key; exactly one of the two. With a
 * file, its `token_uri` (when present) wins over `tokenUri`: the endpoint belongs to the key.
 */
export const fcmProviderConfig = z
  .object({
    type: z.literal('fcm'),
    name: z.string().min(1).default('fcm'),
    projectId: z.string().min(1),
    clientEmail: z.string().min(1).optional(),
    privateKey: z.string().min(1).optional(),
    serviceAccountFile: z.string().min(1).optional(),
    tokenUri: z.url().default('https://oauth2.googleapis.com/token'),
    baseUrl: z.url().default('https://fcm.googleapis.com'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const inline = c.clientEmail !== undefined || c.privateKey !== undefined;
    if (c.serviceAccountFile !== undefined && inline) {
      ctx.addIssue({
        code: 'custom',
        path: ['serviceAccountFile'],
        message: 'give either serviceAccountFile or clientEmail and privateKey, not both',
      });
    } else if (c.serviceAccountFile === undefined && !inline) {
      ctx.addIssue({
        code: 'custom',
        path: ['serviceAccountFile'],
        message: 'credentials required: serviceAccountFile, or clientEmail and privateKey',
      });
    } else if (inline) {
      for (const field of ['clientEmail', 'privateKey'] as const) {
        if (c[field] === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [field],
            message: 'clientEmail and privateKey go together',
          });
        }
      }
    }
  });

export type FcmProviderConfig = z.output<typeof fcmProviderConfig>;

const serviceAccountJson = z.object({
  client_email: z.string().min(1),
  private_key: z.string().min(1),
  token_uri: z.url().optional(),
});

const tokenResponse = z.object({
  access_token: z.string().min(1),
  expires_in: z.number().positive(),
});

/** The parts of Google's error body we act on; everything is optional because proxies vary. */
const googleErrorBody = z.object({
  error: z.object({
    code: z.number().optional(),
    message: z.string().optional(),
    status: z.string().optional(),
    details: z.array(z.looseObject({ '@type': z.string().optional() })).optional(),
  }),
});

interface Credentials {
  clientEmail: string;
  key: KeyObject;
  tokenUri: string;
}

interface CachedToken {
  value: string;
  /** now() from which the token is no longer handed out. */
  refreshAt: number;
}

/** One token request shared by every delivery waiting for it. */
interface TokenFlight {
  promise: Promise<string>;
  controller: AbortController;
  /** Deliveries still waiting; the request is aborted when the last one gives up. */
  waiters: number;
}

/**
 * Builds the provider. Reads `serviceAccountFile` and parses the private key now, so bad
 * credentials stop start-up instead of failing every delivery. `now` drives token expiry (and the
 * JWT's iat), so tests can move time.
 */
export function createFcmProvider(
  config: FcmProviderConfig,
  now: () => number = () => Date.now(),
): Provider {
  const name = config.name;
  const credentials = loadCredentials(config);
  const sendUrl = `${config.baseUrl.replace(/\/+$/, '')}/v1/projects/${encodeURIComponent(config.projectId)}/messages:send`;

  let cached: CachedToken | undefined;
  let flight: TokenFlight | undefined;

  async function requestToken(signal: AbortSignal): Promise<CachedToken> {
    const startedAt = now();
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: signedJwt(credentials, startedAt),
    }).toString();
    const failed = `${name}: OAuth token request failed`;
    let response: HttpResponse;
    try {
      response = await httpRequest(name, credentials.tokenUri, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body,
        signal,
      });
    } catch (err) {
      const reason = err instanceof Error ? err.message.replace(`${name}: `, '') : 'unknown error';
      throw new TransientDeliveryError(`${failed}: ${reason}`, { cause: err });
    }
    if (response.status < 200 || response.status >= 300) {
      // Even a 4xx (invalid_grant, unauthorized_client) is transient: our credentials are wrong,
      // not the notification, and the attempt should fail over or wait for a fixed config.
      throw new TransientDeliveryError(
        `${failed}: HTTP ${response.status}${oauthErrorDetail(response.text)}`,
        { retryAfterMs: retryAfterMs(response.headers.get('retry-after')) },
      );
    }
    const parsed = tokenResponse.safeParse(parseJson(response.text));
    if (!parsed.success) {
      throw new TransientDeliveryError(`${failed}: unexpected response body`);
    }
    const lifetimeMs = parsed.data.expires_in * 1000;
    // A token shorter-lived than twice the margin is still used for half its life.
    const margin = Math.min(REFRESH_MARGIN_MS, lifetimeMs / 2);
    return { value: parsed.data.access_token, refreshAt: startedAt + lifetimeMs - margin };
  }

  function accessToken(signal: AbortSignal): Promise<string> {
    if (cached !== undefined && now() < cached.refreshAt) return Promise.resolve(cached.value);
    let current = flight;
    if (current === undefined) {
      // The request gets its own signal: the delivery that happened to start it may give up
      // while others still wait for the same token.
      const controller = new AbortController();
      const promise = requestToken(controller.signal)
        .then((token) => {
          cached = token;
          return token.value;
        })
        .finally(() => {
          if (flight?.controller === controller) flight = undefined;
        });
      current = flight = { promise, controller, waiters: 0 };
    }
    const joined = current;
    joined.waiters += 1;
    return new Promise<string>((resolve, reject) => {
      let waiting = true;
      const leave = () => {
        waiting = false;
        joined.waiters -= 1;
        signal.removeEventListener('abort', abort);
      };
      const abort = () => {
        if (!waiting) return;
        leave();
        if (joined.waiters === 0) {
          joined.controller.abort();
          // Forget it now, so a delivery arriving before it settles starts a fresh request.
          if (flight === joined) flight = undefined;
        }
        reject(new TransientDeliveryError(`${name}: request aborted while waiting for a token`));
      };
      if (signal.aborted) {
        abort();
        return;
      }
      signal.addEventListener('abort', abort, { once: true });
      joined.promise.then(
        (value) => {
          if (!waiting) return;
          leave();
          resolve(value);
        },
        (err: Error) => {
          if (!waiting) return;
          leave();
          reject(err);
        },
      );
    });
  }

  function send(n: Notification, to: string, token: string, signal: AbortSignal) {
    const { title, body, data } = n.content;
    const notification = {
      ...(title !== undefined && { title }),
      ...(body !== undefined && { body }),
    };
    return httpRequest(name, sendUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify({
        message: {
          token: to,
          ...(Object.keys(notification).length > 0 && { notification }),
          // Last, so a caller's data cannot forge the id the app uses to report back.
          data: { ...data, herald_notification_id: n.id },
        },
      }),
      signal,
    });
  }

  function sendFailure(response: HttpResponse, n: Notification, to: string): Error {
    const error = parseGoogleError(response.text);
    const hint = tokenHint(to);
    // Google's message is free text that may echo the token or the content it was sent.
    const describe = (text: string | undefined) =>
      text === undefined ? undefined : redactEchoes(text.split(to).join(hint), echoesOf(n));
    const detail = [error?.errorCode ?? error?.status, describe(error?.message)]
      .filter((part) => part !== undefined && part !== '')
      .join(': ');
    if (error?.errorCode !== undefined && PERMANENT_CODES.has(error.errorCode)) {
      return new PermanentDeliveryError(
        `${name}: ${error.errorCode}: invalid or unregistered token ${hint} (HTTP ${response.status}${
          error.message ? `: ${describe(error.message)}` : ''
        })`,
        { invalidAddress: true },
      );
    }
    const failure =
      failureOf(name, response, detail || undefined) ??
      new TransientDeliveryError(`${name}: HTTP ${response.status}`);
    // 401 and 403 without a token-specific code mean our project credentials or permissions are
    // wrong; a transient-coded error (e.g. QUOTA_EXCEEDED) is transient whatever its status.
    const credentialsAtFault = response.status === 401 || response.status === 403;
    const transientCode = error?.errorCode !== undefined && TRANSIENT_CODES.has(error.errorCode);
    if (failure instanceof PermanentDeliveryError && (credentialsAtFault || transientCode)) {
      return new TransientDeliveryError(failure.message, {
        retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
      });
    }
    return failure;
  }

  return {
    name,
    async deliver(n: Notification, signal: AbortSignal): Promise<DeliveryResult> {
      if (n.to === null || n.to === '') {
        throw new PermanentDeliveryError(`${name}: the notification has no device token`);
      }
      const to = n.to;
      let token = await accessToken(signal);
      let response = await send(n, to, token, signal);
      const error = response.status === 401 ? parseGoogleError(response.text) : undefined;
      // An APNs/web-push credential problem (THIRD_PARTY_AUTH_ERROR) is not cured by a new token.
      if (response.status === 401 && error?.errorCode !== 'THIRD_PARTY_AUTH_ERROR') {
        // Revoked or expired early: drop it (unless a concurrent delivery already replaced it)
        // and try once more within this attempt.
        if (cached?.value === token) cached = undefined;
        token = await accessToken(signal);
        response = await send(n, to, token, signal);
      }
      if (response.status >= 200 && response.status < 300) {
        const parsed = z.object({ name: z.string().min(1) }).safeParse(parseJson(response.text));
        // FCM accepted the message; an odd body must not turn that into a retry (a duplicate).
        return parsed.success ? { providerMessageId: parsed.data.name } : {};
      }
      throw sendFailure(response, n, to);
    },
  };
}

function loadCredentials(config: FcmProviderConfig): Credentials {
  let clientEmail = config.clientEmail;
  let pem = config.privateKey;
  let tokenUri = config.tokenUri;
  if (config.serviceAccountFile !== undefined) {
    const file = config.serviceAccountFile;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`${config.name}: cannot read serviceAccountFile ${file}`, { cause: err });
    }
    // JSON.parse's message quotes the input, which holds the private key: never pass it on.
    const json = parseJson(text);
    if (json === undefined) throw new Error(`${config.name}: ${file} is not valid JSON`);
    const parsed = serviceAccountJson.safeParse(json);
    if (!parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.')))].join(', ');
      throw new Error(`${config.name}: ${file} is not a service-account key (check ${fields})`);
    }
    clientEmail = parsed.data.client_email;
    pem = parsed.data.private_key;
    tokenUri = parsed.data.token_uri ?? tokenUri;
  }
  if (clientEmail === undefined || pem === undefined) {
    throw new Error(`${config.name}: clientEmail and privateKey are required`);
  }
  let key: KeyObject;
  try {
    // A PEM pasted into an environment variable often arrives with literal "\n" sequences.
    key = createPrivateKey(pem.includes('\n') ? pem : pem.replaceAll('\\n', '\n'));
  } catch {
    throw new Error(`${config.name}: privateKey is not a valid PEM private key`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new Error(`${config.name}: privateKey must be an RSA key (RS256)`);
  }
  return { clientEmail, key, tokenUri };
}

/** The JWT-bearer assertion for Google's token endpoint (RFC 7523), signed RS256. */
function signedJwt(credentials: Credentials, nowMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  const header = base64url({ alg: 'RS256', typ: 'JWT' });
  const claims = base64url({
    iss: credentials.clientEmail,
    scope: SCOPE,
    aud: credentials.tokenUri,
    iat,
    exp: iat + JWT_LIFETIME_S,
  });
  const signature = sign('sha256', Buffer.from(`${header}.${claims}`), credentials.key);
  return `${header}.${claims}.${signature.toString('base64url')}`;
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** `error` and `error_description` of an OAuth error body (RFC 6749 §5.2), if it is one. */
function oauthErrorDetail(text: string): string {
  const parsed = z
    .object({ error: z.string(), error_description: z.string().optional() })
    .safeParse(parseJson(text));
  if (!parsed.success) return '';
  const { error, error_description: description } = parsed.data;
  return ` ${error}${description ? ` (${description})` : ''}`;
}

function parseGoogleError(
  text: string,
): { status?: string; message?: string; errorCode?: string } | undefined {
  const parsed = googleErrorBody.safeParse(parseJson(text));
  if (!parsed.success) return undefined;
  const { status, message, details } = parsed.data.error;
  const fcm = details?.find((d) => d['@type'] === FCM_ERROR_TYPE);
  const errorCode = typeof fcm?.errorCode === 'string' ? fcm.errorCode : undefined;
  return { status, message, errorCode };
}

/** Enough of a device token to find it in FCM's console, never the whole (it is a credential). */
function tokenHint(to: string): string {
  return `${to.slice(0, Math.min(8, Math.floor(to.length / 2)))}…`;
}
