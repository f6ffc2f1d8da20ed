/**
 * HTTP for providers: one request with the attempt's abort signal, and one classification of the
 * outcome every HTTP provider shares — 2xx is success; 408, 429 and 5xx are transient (a
 * `Retry-After` rides along); any other status is permanent; a network error or an abort is
 * transient. Providers refine the permanent/transient split from the response body where their API
 * says more (e.g. FCM's UNREGISTERED token).
 */
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import {
  isPermanentDeliveryError,
  PermanentDeliveryError,
  TransientDeliveryError,
} from '../domain/errors.js';

export interface HttpResponse {
  status: number;
  /** The response's headers (global fetch's or undici's: both read alike). */
  headers: Pick<Headers, 'get'>;
  /** The body as text ('' when empty). */
  text: string;
}

/**
 * Sends one request. Network failures and aborts become TransientDeliveryError naming `provider`;
 * any HTTP status resolves (classify it with `failureOf`). With a `dispatcher` (an undici Agent),
 * the request goes through undici's own fetch, the one that dispatcher belongs to, and a
 * PermanentDeliveryError its connector raised (a refused address) is thrown as it is.
 */
export async function httpRequest(
  provider: string,
  url: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    signal: AbortSignal;
    dispatcher?: Dispatcher;
  },
): Promise<HttpResponse> {
  const { dispatcher, ...request } = init;
  let response: Pick<HttpResponse, 'status' | 'headers'> & { text(): Promise<string> };
  try {
    response =
      dispatcher === undefined
        ? await fetch(url, { ...request, redirect: 'manual' })
        : await undiciFetch(url, { ...request, redirect: 'manual', dispatcher });
  } catch (err) {
    const cause = (err as Error).cause;
    // A refusal by the dispatcher's own connector (private-addresses.ts): no retry changes it.
    if (isPermanentDeliveryError(cause)) throw cause;
    const reason = init.signal.aborted
      ? 'request aborted'
      : ((err as Error).cause as Error | undefined)?.message ||
        (err as Error).message ||
        'request failed';
    // fetch quotes the URL in some errors (one with credentials, one it cannot parse), and a URL
    // may carry a receiver's token or password: never pass it on.
    throw new TransientDeliveryError(
      `${provider}: ${reason.replace(URL_IN_TEXT, '<url>').trim()}`,
      {
        cause: err,
      },
    );
  }
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    throw new TransientDeliveryError(`${provider}: reading the response failed`, { cause: err });
  }
  return { status: response.status, headers: response.headers, text };
}

const URL_IN_TEXT = /\b[a-z][a-z\d+.-]*:\/\/\S*/gi;

/** Null for a 2xx; otherwise the delivery error the status stands for. */
export function failureOf(
  provider: string,
  response: HttpResponse,
  detail?: string,
): TransientDeliveryError | PermanentDeliveryError | null {
  const { status } = response;
  if (status >= 200 && status < 300) return null;
  const message = `${provider}: HTTP ${status}${detail ? ` (${detail})` : ''}`;
  if (status === 408 || status === 429 || status >= 500) {
    return new TransientDeliveryError(message, {
      retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
    });
  }
  return new PermanentDeliveryError(message);
}

/**
 * Parses a Retry-After header: delta-seconds or an HTTP date. Undefined when absent or unparseable;
 * never negative; capped at one day.
 */
export function retryAfterMs(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  let ms: number;
  if (/^\d+$/.test(value)) {
    ms = Number(value) * 1000;
  } else {
    // Only an HTTP date (they all end in GMT): Date.parse alone reads '-5' or '1.5' as a date.
    const at = /GMT$/i.test(value) ? Date.parse(value) : NaN;
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), 86_400_000);
}
