/**
 * Between the api's protobuf messages and the GraphQL schema's types, and from Connect errors to
 * GraphQL errors with `extensions.code` (unexpected ones are masked by the gateway).
 */
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  Channel as PbChannel,
  NotificationStatus as PbStatus,
  Priority as PbPriority,
  type Notification as PbNotification,
  type NotificationEvent as PbEvent,
} from '@herald/client';
import { BadRequestSchema, RetryInfoSchema } from '@herald/client/gen/google/rpc/error_details_pb';
import { GraphQLError } from 'graphql';
import type {
  Channel,
  Notification,
  NotificationEvent,
  NotificationStatus,
  Priority,
} from './generated/resolvers.js';

const iso = (t: Timestamp | undefined): string | null =>
  t ? timestampDate(t).toISOString() : null;
const keyValues = (m: Record<string, string>) =>
  Object.entries(m).map(([key, value]) => ({ key, value }));

/** A notification for GraphQL; `events` is filled in when the api returned the history. */
export function notificationFromPb(
  n: PbNotification,
  events?: readonly PbEvent[],
): Notification & { eventsLoaded: boolean } {
  return {
    id: n.id,
    userId: n.userId,
    channel: PbChannel[n.channel] as Channel,
    status: PbStatus[n.status] as NotificationStatus,
    priority: (PbPriority[n.priority] ?? 'NORMAL') as Priority,
    category: n.category || null,
    content: {
      subject: n.content?.subject || null,
      body: n.content?.body || null,
      html: n.content?.html || null,
      title: n.content?.title || null,
      data: keyValues(n.content?.data ?? {}),
    },
    to: n.to || null,
    correlationId: n.correlationId || null,
    metadata: keyValues(n.metadata),
    attempt: n.attempt,
    version: Number(n.version),
    sendAt: iso(n.sendAt),
    createdAt: iso(n.createdAt) ?? '',
    updatedAt: iso(n.updatedAt) ?? '',
    deliveredAt: iso(n.deliveredAt),
    nextAttemptAt: iso(n.nextAttemptAt),
    provider: n.provider || null,
    lastError: n.lastError || null,
    events: (events ?? []).map(eventFromPb),
    eventsLoaded: events !== undefined,
  };
}

function eventFromPb(e: PbEvent): NotificationEvent {
  return {
    time: iso(e.time) ?? '',
    status: PbStatus[e.status] as NotificationStatus,
    attempt: e.attempt,
    provider: e.provider || null,
    error: e.error || null,
    version: Number(e.version),
  };
}

export const channelToPb = (c: Channel): PbChannel => PbChannel[c];
export const statusToPb = (s: NotificationStatus): PbStatus => PbStatus[s];
export const priorityToPb = (p: Priority): PbPriority => PbPriority[p];

/**
 * An ISO date from a GraphQL argument; when it is not one, a BAD_USER_INPUT error naming `field`
 * as the api names its fields (`send_at`), so a caller sees one naming whoever checked.
 */
export function timestampArg(
  value: string | null | undefined,
  field: string,
): Timestamp | undefined {
  if (value === null || value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) {
    throw new GraphQLError(`${field}: must be an ISO 8601 date-time`, {
      extensions: {
        code: 'BAD_USER_INPUT',
        fieldViolations: [{ field, description: 'must be an ISO 8601 date-time' }],
      },
    });
  }
  return timestampFromDate(d);
}

const CODES: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: 'BAD_USER_INPUT',
  [Code.NotFound]: 'NOT_FOUND',
  [Code.AlreadyExists]: 'CONFLICT',
  [Code.Unauthenticated]: 'UNAUTHENTICATED',
  [Code.PermissionDenied]: 'FORBIDDEN',
  [Code.ResourceExhausted]: 'RATE_LIMITED',
  [Code.FailedPrecondition]: 'FAILED_PRECONDITION',
  [Code.Unavailable]: 'UNAVAILABLE',
  [Code.DeadlineExceeded]: 'TIMEOUT',
};

/**
 * A GraphQL error for what the api answered: the api's message and an `extensions.code`, with the
 * bad fields of an invalid request and the retry delay of a rate limit. Anything that is not an
 * api answer is rethrown as is, for the gateway to mask.
 */
export function graphqlErrorFrom(err: unknown): unknown {
  if (!(err instanceof ConnectError)) return err;
  const code = CODES[err.code];
  if (code === undefined) return err; // internal and unknown: masked
  const extensions: Record<string, unknown> = { code };
  const violations = err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
  if (violations.length > 0) {
    extensions.fieldViolations = violations.map((v) => ({
      field: v.field,
      description: v.description,
    }));
  }
  const [retry] = err.findDetails(RetryInfoSchema);
  if (retry?.retryDelay) {
    extensions.retryAfterMs =
      Number(retry.retryDelay.seconds) * 1000 + Math.round(retry.retryDelay.nanos / 1e6);
  }
  return new GraphQLError(err.rawMessage, { extensions });
}

/** Runs an api call, turning its errors into GraphQL errors. */
export async function callApi<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw graphqlErrorFrom(err);
  }
}
