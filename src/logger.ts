/**
 * pino JSON logs. Recipient data, message bodies and secrets are redacted wherever they appear in
 * a logged object.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import type { Logger as LoggerPort } from './domain/ports.js';

export type Logger = PinoLogger;

/** Fields whose values are recipient data, content or secrets, at the top level or one down. */
const FIELDS = [
  'to',
  'content',
  'metadata',
  'authorization',
  'cookie',
  'apiKey',
  'password',
  'pass',
  'secret',
  'token',
  'accessToken',
  'authToken',
  'privateKey',
  'tokenSecret',
];

const REDACT = [
  ...FIELDS,
  ...FIELDS.map((f) => `*.${f}`),
  // Request headers, wherever a request or its headers are logged.
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  // PostgreSQL's detail quotes the values of a failing row ("Failing row contains (…)").
  'err.detail',
  'err.cause.detail',
];

export function createLogger(options: {
  level: string;
  role: string;
  /** Where the lines go; default stdout. */
  destination?: pino.DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level,
      base: { role: options.role },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

/** The default interval: at most one line per 5 s for the same warning. */
const WARN_INTERVAL_MS = 5_000;

interface Last {
  at: number;
  suppressed: number;
}

const throttles = new WeakMap<LoggerPort, Map<string, Last>>();

/**
 * Warnings about a condition that fails many operations at once — a database outage fails every
 * request and every claim — logged at most once per interval per logger and message: the first
 * at once, the same warning again within the interval only counted, and the next line logged
 * carries that count as `suppressed`. An outage of minutes at 1,000 requests/s is then a few dozen
 * lines, not a flood that buries everything else.
 */
export function warnThrottled(
  logger: LoggerPort,
  fields: object,
  msg: string,
  intervalMs = WARN_INTERVAL_MS,
  now: () => number = Date.now,
): void {
  let byMessage = throttles.get(logger);
  if (byMessage === undefined) {
    byMessage = new Map();
    throttles.set(logger, byMessage);
  }
  const t = now();
  const last = byMessage.get(msg);
  if (last !== undefined && t - last.at < intervalMs) {
    last.suppressed += 1;
    return;
  }
  const suppressed = last?.suppressed ?? 0;
  logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  byMessage.set(msg, { at: t, suppressed: 0 });
}

/**
 * `logger` with its warnings throttled as warnThrottled does, for parts whose every warning is
 * of that kind: the domain's publish and stamp failures (NATS or PostgreSQL away) come once per
 * notification otherwise.
 */
export function withThrottledWarnings(logger: LoggerPort): LoggerPort {
  return {
    debug: (obj, msg) => logger.debug(obj, msg),
    info: (obj, msg) => logger.info(obj, msg),
    warn: (obj, msg) => warnThrottled(logger, obj, msg ?? ''),
    error: (obj, msg) => logger.error(obj, msg),
  };
}
