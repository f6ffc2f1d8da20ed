/**
 * pino JSON logs. Recipient data, message bodies and secrets are redacted wherever they appear in
 * a logged object.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

const REDACT = [
  'to',
  'content',
  'metadata',
  '*.to',
  '*.content',
  '*.metadata',
  'authorization',
  '*.authorization',
  'apiKey',
  '*.apiKey',
  'password',
  '*.password',
];

export function createLogger(options: {
  level: string;
  role: string;
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
