/**
 * Rate-limit response headers, as the IETF httpapi RateLimit draft writes them (structured
 * fields): `RateLimit-Policy: "<policy>";q=<limit>;w=<window s>` and
 * `RateLimit: "<policy>";r=<remaining>;t=<seconds until a send is allowed or the window resets>`,
 * plus `Retry-After` when the send was refused. Over gRPC they travel as response metadata.
 */
import type { RateLimitDecision } from '../domain/rate-limit-policy.js';

export function rateLimitHeaders(d: RateLimitDecision): Record<string, string> {
  const name = JSON.stringify(d.policy);
  const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));
  const headers: Record<string, string> = {
    'ratelimit-policy': `${name};q=${d.limit};w=${seconds(d.windowMs)}`,
    ratelimit: `${name};r=${d.remaining};t=${seconds(d.allowed ? d.resetMs : d.retryAfterMs)}`,
  };
  if (!d.allowed) headers['retry-after'] = String(seconds(d.retryAfterMs));
  return headers;
}
