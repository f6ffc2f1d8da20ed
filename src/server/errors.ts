/**
 * The one mapping from domain errors to Connect codes. Unexpected errors are logged once, with
 * their cause, and masked to the caller.
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { BadRequestSchema, RetryInfoSchema } from '@herald/client/gen/google/rpc/error_details_pb';
import { HeraldError, RateLimitedError, ValidationError } from '../domain/errors.js';
import { rateLimitHeaders } from './rate-limit-headers.js';
import type { Logger } from '../domain/ports.js';
import { warnThrottled } from '../logger.js';

const CODES: Record<HeraldError['kind'], Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  transient_delivery: Code.Unavailable,
  permanent_delivery: Code.FailedPrecondition,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
};

export function toConnectError(err: unknown, logger: Logger, rpc: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ValidationError) {
    return new ConnectError(err.message, Code.InvalidArgument, undefined, [
      {
        desc: BadRequestSchema,
        value: create(BadRequestSchema, {
          fieldViolations: err.violations.map((v) => ({
            field: v.field,
            description: v.description,
          })),
        }),
      },
    ]);
  }
  if (err instanceof RateLimitedError) {
    return new ConnectError(err.message, Code.ResourceExhausted, rateLimitHeaders(err.limit), [
      {
        desc: RetryInfoSchema,
        value: create(RetryInfoSchema, {
          retryDelay: durationFromMs(Math.max(0, err.limit.retryAfterMs)),
        }),
      },
    ]);
  }
  if (err instanceof HeraldError) return new ConnectError(err.message, CODES[err.kind]);
  if (isDatabaseUnavailable(err)) {
    warnThrottled(logger, { rpc, err: (err as Error).message }, 'database unavailable');
    return new ConnectError('storage is unavailable; retry later', Code.Unavailable);
  }
  logger.error({ rpc, err }, 'unexpected error');
  return new ConnectError('internal error', Code.Internal);
}

/** Connection-level failures from pg (refused, reset, terminated, too many clients). */
function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code ?? '';
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EPIPE',
      '57P01',
      '57P02',
      '57P03',
      '53300',
      '08006',
      '08001',
      '08003',
    ].includes(code) ||
    /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect/.test(
      err.message,
    )
  );
}

/** Maps whatever a handler throws through toConnectError, also while a stream is under way. */
export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return {
        ...res,
        message: mapped(res.message, (err) => toConnectError(err, logger, req.method.name)),
      };
    } catch (err) {
      throw toConnectError(err, logger, req.method.name);
    }
  };
}

async function* mapped<T>(
  messages: AsyncIterable<T>,
  map: (err: unknown) => ConnectError,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    throw map(err);
  }
}
