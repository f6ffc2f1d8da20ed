/**
 * pino JSON logs. Recipient data, message bodies and secrets are redacted wherever they appear in
 * a logged object.
 */
import { pino, type Logger as PinoLogger } from 'pino';

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
