import type { RateLimitDecision } from './rate-limit-policy.js';

/**
 * The one error hierarchy. The api maps these to Connect codes (server/errors.ts), the worker to
 * ack / nak(delay) / term (domain/delivery-decision.ts). Anything else is an unexpected error:
 * masked to callers and logged once where its fate is decided.
 */
export abstract class HeraldError extends Error {
  abstract readonly kind:
    | 'invalid_argument'
    | 'not_found'
    | 'already_exists'
    | 'failed_precondition'
    | 'unavailable'
    | 'transient_delivery'
    | 'permanent_delivery'
    | 'unauthenticated'
    | 'resource_exhausted'
    | 'permission_denied';
}

/** One bad field: its path in the request (e.g. `content.subject`) and the rule it broke. */
export interface FieldViolation {
  field: string;
  description: string;
}

export class ValidationError extends HeraldError {
  readonly kind = 'invalid_argument';
  constructor(readonly violations: readonly FieldViolation[]) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join('; '));
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends HeraldError {
  readonly kind = 'not_found';
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'NotFoundError';
  }
}

export class AlreadyExistsError extends HeraldError {
  readonly kind = 'already_exists';
  constructor(message: string) {
    super(message);
    this.name = 'AlreadyExistsError';
  }
}

export class FailedPreconditionError extends HeraldError {
  readonly kind = 'failed_precondition';
  constructor(message: string) {
    super(message);
    this.name = 'FailedPreconditionError';
  }
}

/** A dependency (PostgreSQL, NATS, Redis) could not be reached; the caller may retry. */
export class UnavailableError extends HeraldError {
  readonly kind = 'unavailable';
  constructor(
    readonly dependency: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} is unavailable`, options);
    this.name = 'UnavailableError';
  }
}

/** A delivery attempt failed in a way that may succeed later (timeout, 5xx, 429). */
export class TransientDeliveryError extends HeraldError {
  readonly kind = 'transient_delivery';
  /** The provider's Retry-After, when it sent one; wins over the computed backoff. */
  readonly retryAfterMs: number | undefined;
  /**
   * The failure is the receiver's, an endpoint the caller chose (a webhook's own `to`), not the
   * provider's: it says nothing about the provider's health, so it neither trips the provider's
   * circuit breaker nor fails over to another provider (which would reach the same receiver).
   */
  readonly receiverFault: boolean;
  constructor(
    message: string,
    options?: { retryAfterMs?: number; cause?: unknown; receiverFault?: boolean },
  ) {
    super(message, { cause: options?.cause });
    this.name = 'TransientDeliveryError';
    this.retryAfterMs = options?.retryAfterMs;
    this.receiverFault = options?.receiverFault ?? false;
  }
}

/** A delivery attempt failed in a way that retrying cannot fix (invalid address, 4xx). */
export class PermanentDeliveryError extends HeraldError {
  readonly kind = 'permanent_delivery';
  /** The address itself is dead (e.g. an unregistered push token): forget it. */
  readonly invalidAddress: boolean;
  constructor(message: string, options?: { cause?: unknown; invalidAddress?: boolean }) {
    super(message, { cause: options?.cause });
    this.name = 'PermanentDeliveryError';
    this.invalidAddress = options?.invalidAddress ?? false;
  }
}

/** A permanent delivery failure, from any provider (or from a chain of them). */
export function isPermanentDeliveryError(error: unknown): error is PermanentDeliveryError {
  return error instanceof HeraldError && error.kind === 'permanent_delivery';
}

/**
 * The caller's credential is missing or unusable; the message says why (missing, malformed, bad
 * signature, expired, wrong audience, …) so a client can tell "log in again" from "fix your code".
 */
export class UnauthenticatedError extends HeraldError {
  readonly kind = 'unauthenticated';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnauthenticatedError';
  }
}

/**
 * The caller is who they say but may not do this (a key without the scope, a user token asking for
 * another user's notifications). Another tenant's resource stays NotFoundError, so ids don't leak.
 */
export class PermissionDeniedError extends HeraldError {
  readonly kind = 'permission_denied';
  constructor(message: string) {
    super(message);
    this.name = 'PermissionDeniedError';
  }
}

/** Over a rate limit: the caller may retry after `limit.retryAfterMs`. */
export class RateLimitedError extends HeraldError {
  readonly kind = 'resource_exhausted';
  constructor(
    message: string,
    readonly limit: RateLimitDecision,
  ) {
    super(message);
    this.name = 'RateLimitedError';
  }
}
