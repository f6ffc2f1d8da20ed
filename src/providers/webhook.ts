/**
 * The `webhook` provider: POSTs the notification as JSON to the receiver's URL, signed with
 * HMAC-SHA256 over `${timestamp}.${body}` with the tenant's secret. `signWebhook` and
 * `verifyWebhookSignature` are the two halves of that scheme; docs/webhooks.md is the receiver's
 * side of the contract. Requests go through undici, on agents of the provider's own: a plain one
 * for the configured url, and for a notification's own `to`, with
 * HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny, one that connects to public addresses only
 * (private-addresses.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Agent } from 'undici';
import { z } from 'zod';
import { PermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import type { Notification } from '../domain/notification.js';
import type { DeliveryResult, Provider } from '../domain/ports.js';
import { hasCredentials, isHttpUrl } from '../domain/validation.js';
import { failureOf, httpRequest } from './http.js';
import { createAddressGuard, type AddressGuard, type ResolveHost } from './private-addresses.js';

export const webhookProviderConfig = z
  .object({
    type: z.literal('webhook'),
    name: z.string().min(1).default('webhook'),
    /** Where to POST when the notification has no `to` URL. */
    url: z.url().optional(),
    /** The signing secret of tenants without one of their own. */
    secret: z.string().min(16),
    /** Per-tenant signing secrets, by tenant id; a tenant's own secret wins over `secret`. */
    tenantSecrets: z.record(z.string(), z.string().min(16)).default({}),
  })
  .strict();

export type WebhookProviderConfig = z.infer<typeof webhookProviderConfig>;

/** How far a signed timestamp may be from the receiver's clock, by default. */
const DEFAULT_TOLERANCE_SECONDS = 300;

export interface WebhookDeliveryOptions {
  /**
   * `deny`: a notification's own `to` reaches public addresses only; the configured url, the
   * operator's, is trusted (HERALD_WEBHOOK_PRIVATE_ADDRESSES). Default `allow`.
   */
  privateAddresses?: 'allow' | 'deny';
  /** How the host names of `to` URLs are resolved under `deny`; default the system's resolver. */
  resolveHost?: ResolveHost;
}

/**
 * Creates the provider; `config` is the parsed (`webhookProviderConfig`) configuration and `now`
 * the clock the signature timestamp is read from (ms since the epoch).
 */
export function createWebhookProvider(
  config: WebhookProviderConfig,
  now: () => number = () => Date.now(),
  options: WebhookDeliveryOptions = {},
): Provider {
  const { name } = config;
  const trusted = new Agent();
  const guard: AddressGuard | null =
    options.privateAddresses === 'deny' ? createAddressGuard(name, options.resolveHost) : null;
  return {
    name,
    async deliver(notification: Notification, signal: AbortSignal): Promise<DeliveryResult> {
      const target = notification.to ?? config.url;
      if (target === undefined) {
        throw new PermanentDeliveryError(`${name}: no 'to' URL and no default url configured`);
      }
      // Validation checks `to`, but only an http(s) URL may leave here: fetch would also "deliver"
      // to data: or blob: URLs. The URL is not echoed: it may carry the receiver's token.
      if (!isHttpUrl(target))
        throw new PermanentDeliveryError(`${name}: 'to' is not an http(s) URL`);
      const url = new URL(target);
      // fetch refuses such a URL on every attempt.
      if (hasCredentials(url))
        throw new PermanentDeliveryError(`${name}: the URL carries credentials (user:password@)`);
      // Checked here too, not only when accepted: the setting may have changed since, and only
      // here is a host name resolved to the address actually connected to.
      const own = notification.to !== null;
      const guarded = guard !== null && own ? guard : null;
      guarded?.checkLiteral(url);

      // Built once: the signature must cover exactly the bytes sent.
      const body = JSON.stringify({
        id: notification.id,
        tenantId: notification.tenantId,
        userId: notification.userId,
        channel: notification.channel,
        priority: notification.priority,
        category: notification.category,
        content: notification.content,
        metadata: notification.metadata,
        correlationId: notification.correlationId,
        attempt: notification.attempt,
        createdAt: notification.createdAt.toISOString(),
      });
      // A fresh timestamp per attempt, so a retry hours later still passes the receiver's
      // tolerance check; the id stays the same, so the receiver can still dedupe.
      const timestamp = Math.floor(now() / 1000);
      const response = await receiversFault(own, () =>
        httpRequest(name, target, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'herald-webhook-id': notification.id,
            'herald-webhook-timestamp': String(timestamp),
            'herald-webhook-signature': signWebhook(
              secretFor(config, notification.tenantId),
              timestamp,
              body,
            ),
            'idempotency-key': notification.id,
          },
          body,
          signal,
          dispatcher: guarded?.dispatcher ?? trusted,
        }).then((r) => {
          const failed = failureOf(name, r);
          if (failed !== null) throw failed;
          return r;
        }),
      );
      const requestId = response.headers.get('x-request-id');
      return requestId ? { providerMessageId: requestId } : {};
    },
    async close() {
      await Promise.all([trusted.close(), guard?.close()]);
    },
  };
}

/** `v1=` and the hex HMAC-SHA256, keyed by `secret`, of `${timestamp}.${body}`. */
export function signWebhook(
  secret: string,
  timestamp: number | string,
  body: string | Uint8Array,
): string {
  const hmac = createHmac('sha256', secret).update(`${timestamp}.`).update(body);
  return `v1=${hmac.digest('hex')}`;
}

/**
 * True when `signature` (the herald-webhook-signature header) is `secret`'s signature of
 * `timestamp` and `body` (the raw request body, as received) and `timestamp` (unix seconds, the
 * herald-webhook-timestamp header) is within `toleranceSeconds` of `now` (ms since the epoch).
 * Compares in constant time.
 */
export function verifyWebhookSignature(options: {
  secret: string;
  timestamp: number | string;
  body: string | Uint8Array;
  signature: string;
  toleranceSeconds?: number;
  now?: number;
}): boolean {
  const { secret, timestamp, body, signature } = options;
  const toleranceSeconds = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Date.now();
  const seconds =
    typeof timestamp === 'number' ? timestamp : /^\d+$/.test(timestamp) ? Number(timestamp) : NaN;
  if (!Number.isSafeInteger(seconds)) return false;
  if (Math.abs(now / 1000 - seconds) > toleranceSeconds) return false;
  const given = /^v1=([0-9a-f]{64})$/i.exec(signature.trim())?.[1];
  if (given === undefined) return false;
  // Signed as received: the header's text is what the sender signed.
  const expected = signWebhook(secret, timestamp, body).slice('v1='.length);
  // Both are 32 bytes here, as timingSafeEqual requires.
  return timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(expected, 'hex'));
}

/**
 * Runs `call`; when the URL is the notification's own (`own`), a transient failure is its
 * receiver's, not the provider's (TransientDeliveryError.receiverFault): a caller's failing
 * endpoint must not open the circuit that every tenant's webhooks go through.
 */
async function receiversFault<T>(own: boolean, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!own || !(err instanceof TransientDeliveryError)) throw err;
    throw new TransientDeliveryError(err.message, {
      retryAfterMs: err.retryAfterMs,
      cause: err.cause,
      receiverFault: true,
    });
  }
}

function secretFor(config: WebhookProviderConfig, tenantId: string): string {
  // Own keys only: a tenant id such as 'constructor' must not find Object.prototype's members.
  return Object.hasOwn(config.tenantSecrets, tenantId)
    ? (config.tenantSecrets[tenantId] ?? config.secret)
    : config.secret;
}
