/**
 * Names of everything Herald puts on NATS: job subjects, streams, consumers and status subjects.
 * Every other module builds names through these functions, so a test can move the whole layout
 * under a random prefix and never collide with another test or with production.
 */
import type { Channel, Lane } from '../../domain/notification.js';

/** Where Herald's subjects and streams live; tests use a random prefix per test. */
export interface NatsLayout {
  /** First token(s) of every subject, e.g. `herald` in `herald.jobs.email.high`. */
  subjectPrefix: string;
  /** Prefix of every stream name, e.g. `HERALD` in `HERALD_EMAIL`. */
  streamPrefix: string;
}

/** The production layout. */
export const DEFAULT_LAYOUT: NatsLayout = Object.freeze({
  subjectPrefix: 'herald',
  streamPrefix: 'HERALD',
});

const SAFE_BYTE = /^[A-Za-z0-9_-]$/;
const SAFE_TOKEN = /^[A-Za-z0-9_-]+$/;
const ESCAPED_TOKEN = /^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$/;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Turns any string into a single, reversible NATS subject token: `[A-Za-z0-9_-]` is kept, every
 * other UTF-8 byte becomes `%XX` (upper-case hex). The empty string becomes `%`, which no
 * non-empty input can produce. (A lone UTF-16 surrogate is not valid Unicode; like any UTF-8
 * encoder this turns it into U+FFFD.)
 */
export function escapeToken(s: string): string {
  if (s === '') return '%';
  // The common case (UUIDs, most user ids) has nothing to escape: one regex test, no copy.
  if (SAFE_TOKEN.test(s)) return s;
  let out = '';
  for (const ch of s) {
    if (SAFE_BYTE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of utf8Encoder.encode(ch)) {
      out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

/** The inverse of {@link escapeToken}; throws on a token that escapeToken cannot have produced. */
export function unescapeToken(token: string): string {
  if (token === '%') return '';
  if (!ESCAPED_TOKEN.test(token)) {
    throw new Error(`not an escaped subject token: ${JSON.stringify(token)}`);
  }
  const bytes: number[] = [];
  for (let i = 0; i < token.length;) {
    if (token[i] === '%') {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i += 1;
    }
  }
  try {
    return utf8Decoder.decode(new Uint8Array(bytes));
  } catch (cause) {
    throw new Error(`escaped subject token is not UTF-8: ${JSON.stringify(token)}`, { cause });
  }
}

/** `<subjectPrefix>.jobs.<channel>.<lane>`: where one lane's jobs are published. */
export function jobSubject(layout: NatsLayout, channel: Channel, lane: Lane): string {
  return `${layout.subjectPrefix}.jobs.${channel}.${lane}`;
}

/** `<subjectPrefix>.jobs.<channel>.*`: every lane of one channel (the stream's subjects). */
export function jobSubjects(layout: NatsLayout, channel: Channel): string {
  return `${layout.subjectPrefix}.jobs.${channel}.*`;
}

/** `<streamPrefix>_<CHANNEL>`, e.g. `HERALD_IN_APP`: the work-queue stream of one channel. */
export function streamName(layout: NatsLayout, channel: Channel): string {
  return `${layout.streamPrefix}_${channel.toUpperCase()}`;
}

/** `<channel>_<lane>`, e.g. `email_critical`: the durable pull consumer of one lane. */
export function consumerName(channel: Channel, lane: Lane): string {
  return `${channel}_${lane}`;
}

/** `<subjectPrefix>.events.<tenant>.<user>.<notification>`, every id escaped. */
export function statusSubject(
  layout: NatsLayout,
  tenantId: string,
  userId: string,
  notificationId: string,
): string {
  return `${layout.subjectPrefix}.events.${escapeToken(tenantId)}.${escapeToken(userId)}.${escapeToken(notificationId)}`;
}

/**
 * The subscription subject for a tenant's status events, narrowed to one user and/or one
 * notification when given; the unknown part is `*`.
 */
export function statusFilter(
  layout: NatsLayout,
  tenantId: string,
  filter: { userId?: string; notificationId?: string } = {},
): string {
  const user = filter.userId === undefined ? '*' : escapeToken(filter.userId);
  const id = filter.notificationId === undefined ? '*' : escapeToken(filter.notificationId);
  return `${layout.subjectPrefix}.events.${escapeToken(tenantId)}.${user}.${id}`;
}

/** `<streamPrefix>_DLQ`: copies of dead-lettered jobs (PostgreSQL's FAILED rows are the record). */
export function deadLetterStreamName(layout: NatsLayout): string {
  return `${layout.streamPrefix}_DLQ`;
}

/** `<subjectPrefix>.dlq.<channel>.<notification>`: one notification's dead letter. */
export function deadLetterSubject(
  layout: NatsLayout,
  channel: Channel | '*',
  notificationId: string,
): string {
  return `${layout.subjectPrefix}.dlq.${channel}.${escapeToken(notificationId)}`;
}

/** `<subjectPrefix>.dlq.>`: the dead-letter stream's subjects. */
export function deadLetterSubjects(layout: NatsLayout): string {
  return `${layout.subjectPrefix}.dlq.>`;
}

/** `<streamPrefix>_ADVISORIES`: captured max-deliveries advisories of the job streams. */
export function advisoryStreamName(layout: NatsLayout): string {
  return `${layout.streamPrefix}_ADVISORIES`;
}

/** The core-NATS subject the server announces a job that ran out of deliveries on. */
export function maxDeliveriesSubject(layout: NatsLayout, channel: Channel): string {
  return `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${streamName(layout, channel)}.*`;
}

/** The scheduler's durable consumer of the advisory stream. */
export const ADVISORY_CONSUMER = 'scheduler';
