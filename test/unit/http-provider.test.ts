/** The status classification and Retry-After parsing every HTTP provider shares (providers/http.ts). */
import { describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../src/domain/errors.js';
import { failureOf, retryAfterMs, type HttpResponse } from '../../src/providers/http.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

function response(status: number, headers: Record<string, string> = {}): HttpResponse {
  return { status, headers: new Headers(headers), text: '' };
}

describe('retryAfterMs', () => {
  it('is undefined when the header is absent', () => {
    expect(retryAfterMs(null, NOW)).toBeUndefined();
  });

  it('reads delta-seconds as milliseconds', () => {
    expect(retryAfterMs('7', NOW)).toBe(7_000);
    expect(retryAfterMs(' 120 ', NOW)).toBe(120_000);
    expect(retryAfterMs('0', NOW)).toBe(0);
  });

  it('reads an HTTP date as the time left until it', () => {
    expect(retryAfterMs('Sun, 01 Mar 2026 12:00:30 GMT', NOW)).toBe(30_000);
  });

  it('is undefined when the header is garbage', () => {
    expect(retryAfterMs('soon', NOW)).toBeUndefined();
    expect(retryAfterMs('', NOW)).toBeUndefined();
    expect(retryAfterMs('1e3', NOW)).toBeUndefined();
    // Date.parse alone would read these as dates in 2001 and retry at once.
    for (const v of ['-5', '1.5', '2.5']) expect(retryAfterMs(v, NOW)).toBeUndefined();
  });

  it('is 0, never negative, when the date has passed', () => {
    expect(retryAfterMs('Sun, 01 Mar 2026 11:59:00 GMT', NOW)).toBe(0);
  });

  it('is capped at one day', () => {
    expect(retryAfterMs('999999', NOW)).toBe(86_400_000);
    expect(retryAfterMs('Sun, 01 Mar 2027 12:00:00 GMT', NOW)).toBe(86_400_000);
  });
});

describe('failureOf', () => {
  it('is null for a 2xx', () => {
    expect(failureOf('p', response(200))).toBeNull();
    expect(failureOf('p', response(204))).toBeNull();
  });

  it('is permanent when the status is 404, naming the provider, status and detail', () => {
    const error = failureOf('p', response(404), 'no such thing');
    expect(error).toBeInstanceOf(PermanentDeliveryError);
    expect(error?.message).toBe('p: HTTP 404 (no such thing)');
  });

  it.each([408, 429, 500, 503])('is transient when the status is %i', (status) => {
    const error = failureOf('p', response(status));
    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect(error?.message).toBe(`p: HTTP ${status}`);
    expect((error as TransientDeliveryError).retryAfterMs).toBeUndefined();
  });

  it('carries Retry-After when a transient status sends one', () => {
    const error = failureOf('p', response(503, { 'retry-after': '12' }));
    expect(error).toBeInstanceOf(TransientDeliveryError);
    expect((error as TransientDeliveryError).retryAfterMs).toBe(12_000);
  });
});
