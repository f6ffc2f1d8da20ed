/**
 * Provider replies are free text, and providers often echo what they were sent: the recipient, the
 * content. Whatever a provider puts into an error message ends up in `lastError`, in status events
 * and in the logs, where recipient data and content must never appear. These helpers remove every
 * echo before a reply becomes part of an error message.
 */
import { PermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import type { Notification } from '../domain/notification.js';

const REDACTED = '[redacted]';
/** Anything shaped like an email address, whether or not it is the one we sent. */
const EMAIL = /[^\s<>"'(),;:[\]]+@[^\s<>"'(),;:[\]]+\.[^\s<>"'(),;:[\]]+/g;
/**
 * Anything shaped like a phone number: 7 or more digits, at most two separators between two (not
 * dots, so that IP addresses in network errors stay readable).
 */
const PHONE = /(?<!\w)\+?\d(?:[ ()-]{0,2}\d){6,}(?!\w)/g;
/** Shorter values would shred a reply wherever their letters happen to occur. */
const MIN_ECHO_LENGTH = 4;

/** What of `n` a provider's reply may echo: the recipient, and every piece of content and metadata. */
export function echoesOf(n: Notification): string[] {
  const { subject, body, html, title, data } = n.content;
  return [
    n.to,
    subject,
    body,
    html,
    title,
    ...Object.values(data ?? {}),
    ...Object.values(n.metadata),
  ].filter((v): v is string => typeof v === 'string' && v.length >= MIN_ECHO_LENGTH);
}

/**
 * `text` without any echo of `values` (as sent, JSON-escaped or URL-encoded, in any letter case)
 * nor anything shaped like an email address or a phone number, and at most `max` characters long.
 */
export function redactEchoes(text: string, values: readonly string[], max = 300): string {
  let clean = text;
  for (const value of values) {
    const forms = new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)]);
    for (const form of forms) {
      if (form.length >= MIN_ECHO_LENGTH) {
        clean = clean.replace(new RegExp(escapeRegExp(form), 'gi'), REDACTED);
      }
    }
  }
  clean = clean.replace(EMAIL, REDACTED).replace(PHONE, REDACTED);
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/**
 * The same delivery error with its message passed through `redactEchoes`, and without its cause
 * (a library's error that holds the raw reply).
 */
export function withoutEchoes(
  err: TransientDeliveryError | PermanentDeliveryError,
  values: readonly string[],
  max = 1_000,
): TransientDeliveryError | PermanentDeliveryError {
  const message = redactEchoes(err.message, values, max);
  return err instanceof TransientDeliveryError
    ? new TransientDeliveryError(message, { retryAfterMs: err.retryAfterMs })
    : new PermanentDeliveryError(message);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
