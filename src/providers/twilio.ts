/**
 * The `sms` provider for a Twilio-compatible Messages API: one form-encoded POST per attempt,
 * carrying the notification id as Twilio's idempotency token so a retry after a lost response
 * does not send a second SMS. Status classification is http.ts's, refined by Twilio's error codes.
 */
import { z } from 'zod';
import { PermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import type { Notification } from '../domain/notification.js';
import type { DeliveryResult, Provider } from '../domain/ports.js';
import { failureOf, httpRequest } from './http.js';
import { echoesOf, redactEchoes } from './redact.js';

export const twilioProviderConfig = z
  .object({
    type: z.literal('twilio'),
    name: z.string().min(1).default('twilio'),
    baseUrl: z.url().default('https://api.twilio.com'),
    accountSid: z.string().min(1),
    authToken: z.string().min(1),
    /** The sender number; exactly one of `from` and `messagingServiceSid`. */
    from: z.string().optional(),
    /** A messaging service that picks the sender; exactly one of `from` and this. */
    messagingServiceSid: z.string().optional(),
  })
  .strict()
  // An empty string counts as absent: sending `From=` would fail every message at Twilio.
  .refine((c) => Boolean(c.from) !== Boolean(c.messagingServiceSid), {
    message: 'exactly one of from and messagingServiceSid is required',
    path: ['from'],
  });

export type TwilioProviderConfig = z.infer<typeof twilioProviderConfig>;

/**
 * Twilio error codes that mean this recipient cannot get this SMS however often we retry:
 * 21211 invalid To number, 21614 To is not a mobile number, 21610 the recipient unsubscribed
 * (replied STOP) or is blocked, 21408 SMS to the recipient's region is not enabled.
 */
const INVALID_RECIPIENT_CODES: ReadonlySet<number> = new Set([21211, 21614, 21610, 21408]);

/** Creates the provider; `config` is the parsed (`twilioProviderConfig`) configuration. */
export function createTwilioProvider(config: TwilioProviderConfig): Provider {
  const { name } = config;
  const url = `${config.baseUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(
    config.accountSid,
  )}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`).toString(
    'base64',
  )}`;
  const sender: [string, string] = config.messagingServiceSid
    ? ['MessagingServiceSid', config.messagingServiceSid]
    : ['From', config.from ?? ''];

  return {
    name,
    async deliver(notification: Notification, signal: AbortSignal): Promise<DeliveryResult> {
      const { to } = notification;
      const body = notification.content.body ?? '';
      if (to === null) throw new PermanentDeliveryError(`${name}: the notification has no 'to'`);
      if (body === '') throw new PermanentDeliveryError(`${name}: the notification has no body`);

      const response = await httpRequest(name, url, {
        method: 'POST',
        headers: {
          authorization,
          accept: 'application/json',
          'content-type': 'application/x-www-form-urlencoded',
          'i-twilio-idempotency-token': notification.id,
        },
        body: new URLSearchParams([['To', to], sender, ['Body', body]]).toString(),
        signal,
      });

      const json = parseJson(response.text);
      const code = typeof json?.code === 'number' ? json.code : undefined;
      // Twilio's messages are free text that ends up in lastError and logs; whatever it echoes
      // back of the number, the SMS or our token must not.
      const message =
        typeof json?.message === 'string'
          ? redactEchoes(json.message, [...echoesOf(notification), config.authToken])
          : '';
      const detail =
        code === undefined ? message : `Twilio error ${code}${message && `: ${message}`}`;
      const failed = failureOf(name, response, detail);
      if (failed === null) {
        // The message was accepted: a missing sid is no reason to retry and send it twice.
        return typeof json?.sid === 'string' ? { providerMessageId: json.sid } : {};
      }
      if (response.status === 400 && code !== undefined && INVALID_RECIPIENT_CODES.has(code)) {
        throw new PermanentDeliveryError(failed.message);
      }
      if (response.status === 401 || response.status === 403) {
        // Our credentials were refused: a misconfiguration to fix, not a fault of this
        // notification, so it waits (retrying) for the fix rather than failing for good.
        throw new TransientDeliveryError(
          `${failed.message}: the account SID or auth token was rejected (provider misconfiguration)`,
        );
      }
      throw failed;
    },
  };
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
