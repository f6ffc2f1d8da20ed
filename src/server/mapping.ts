/**
 * Contract <-> domain mapping for NotificationService and DeadLetterService. Enum values the
 * contract does not define pass through as a description, so validation can name them.
 */
import { create } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type {
  DeadLetterFilter as PbDeadLetterFilter,
  ListDeadLettersRequest,
  PurgeDeadLettersRequest,
  ReplayDeadLettersRequest,
} from '@herald/client/gen/herald/v1/dead_letter_pb';
import {
  Channel as PbChannel,
  InboxChange as PbInboxChange,
  NotificationEventSchema,
  NotificationSchema,
  NotificationStatus as PbStatus,
  Priority as PbPriority,
  type Notification as PbNotification,
  type NotificationEvent as PbNotificationEvent,
  type GetStatsRequest,
  type SendRequest,
  type ListNotificationsRequest,
  type WatchNotificationsRequest,
} from '@herald/client/gen/herald/v1/notification_pb';
import type {
  DeadLetterFilter,
  DeadLetterSelection,
  ListDeadLettersInput,
} from '../domain/dead-letters.js';
import type { FieldViolation } from '../domain/errors.js';
import type { ListInput, WatchTarget } from '../domain/notifications.js';
import type {
  Channel,
  Content,
  Notification,
  NotificationEvent,
  Priority,
  Status,
} from '../domain/notification.js';
import type { StatsInput } from '../domain/stats.js';
import type { SendInput } from '../domain/validation.js';

/**
 * The domain value of an enum value: `toDomain` of its name (lower case unless given), '' for
 * UNSPECIFIED, and a description for a number the contract does not define, which the use case's
 * validation then rejects by name.
 */
export function enumFromPb(
  e: Record<number, string>,
  value: number,
  toDomain: (name: string) => string = (name) => name.toLowerCase(),
): string {
  if (value === 0) return '';
  const name = e[value];
  return name === undefined ? `unknown value ${value}` : toDomain(name);
}

export function channelFromPb(value: PbChannel): string {
  return enumFromPb(PbChannel, value);
}

export function channelToPb(c: Channel): PbChannel {
  return PbChannel[c.toUpperCase() as keyof typeof PbChannel];
}

export function priorityToPb(p: Priority): PbPriority {
  return PbPriority[p.toUpperCase() as keyof typeof PbPriority];
}

export function statusToPb(s: Status): PbStatus {
  return PbStatus[s];
}

/**
 * The domain values of a repeated enum filter field. An UNSPECIFIED or unknown value adds a
 * violation naming `field` (and is left out).
 */
function enumFilterFromPb<T extends string>(
  e: Record<number, string>,
  values: readonly number[],
  field: string,
  toDomain: (name: string) => T,
  violations: FieldViolation[],
): T[] {
  const undefinedValues = values.filter((v) => v === 0 || e[v] === undefined);
  if (undefinedValues.length > 0) {
    violations.push({
      field,
      description: `must be defined values (got ${undefinedValues.join(', ')})`,
    });
    return [];
  }
  return values.map((v) => toDomain(e[v] as string));
}

const statusFromName = (name: string) => name as Status;
const channelFromName = (name: string) => name.toLowerCase() as Channel;

export function dateFromPb(ts: Timestamp | undefined): Date | null {
  if (ts === undefined) return null;
  // Outside the Timestamp range (years 1-9999) counts as unparseable.
  if (
    ts.seconds < -62135596800n ||
    ts.seconds > 253402300799n ||
    ts.nanos < 0 ||
    ts.nanos > 999_999_999
  ) {
    return new Date(Number.NaN);
  }
  return timestampDate(ts);
}

export function sendInputFromPb(req: SendRequest): SendInput {
  return {
    userId: req.userId,
    channel: channelFromPb(req.channel),
    content: req.content
      ? {
          subject: req.content.subject,
          body: req.content.body,
          html: req.content.html,
          title: req.content.title,
          data: req.content.data,
        }
      : null,
    to: req.to,
    idempotencyKey: req.idempotencyKey,
    priority: enumFromPb(PbPriority, req.priority),
    category: req.category,
    sendAt: dateFromPb(req.sendAt),
    metadata: req.metadata,
    correlationId: req.correlationId,
    template: req.template
      ? { id: req.template.id, version: req.template.version, variables: req.template.variables }
      : null,
  };
}

const ts = (d: Date | null) => (d === null ? undefined : timestampFromDate(d));

/** A message's parts, with the empty strings the contract uses for absent ones. */
export function contentToPb(c: Content) {
  return {
    subject: c.subject ?? '',
    body: c.body ?? '',
    html: c.html ?? '',
    title: c.title ?? '',
    data: c.data ?? {},
  };
}

export function notificationToPb(n: Notification): PbNotification {
  return create(NotificationSchema, {
    id: n.id,
    userId: n.userId,
    channel: channelToPb(n.channel),
    status: statusToPb(n.status),
    priority: priorityToPb(n.priority),
    category: n.category ?? '',
    content: contentToPb(n.content),
    to: n.to ?? '',
    idempotencyKey: n.idempotencyKey ?? '',
    correlationId: n.correlationId ?? '',
    metadata: n.metadata,
    attempt: n.attempt,
    sendAt: ts(n.sendAt),
    createdAt: ts(n.createdAt),
    updatedAt: ts(n.updatedAt),
    deliveredAt: ts(n.deliveredAt),
    nextAttemptAt: ts(n.nextAttemptAt),
    provider: n.provider ?? '',
    providerMessageId: n.providerMessageId ?? '',
    lastError: n.lastError ?? '',
    version: BigInt(n.version),
    deadLetteredAt: ts(n.deadLetteredAt),
    generation: BigInt(n.generation),
    template: n.template ?? undefined,
    statusReason: n.statusReason ?? '',
    seenAt: ts(n.seenAt),
    readAt: ts(n.readAt),
    archivedAt: ts(n.archivedAt),
  });
}

export function eventToPb(e: NotificationEvent): PbNotificationEvent {
  return create(NotificationEventSchema, {
    time: timestampFromDate(e.time),
    status: statusToPb(e.status),
    attempt: e.attempt,
    provider: e.provider ?? '',
    error: e.error ?? '',
    version: BigInt(e.version),
    generation: BigInt(e.generation),
    inboxChange: e.inboxChange ? PbInboxChange[e.inboxChange] : PbInboxChange.UNSPECIFIED,
  });
}

/** A timestamp filter field; an unrepresentable value adds a violation naming `field`. */
function dateFilterFromPb(
  ts: Timestamp | undefined,
  field: string,
  violations: FieldViolation[],
): Date | null {
  const d = dateFromPb(ts);
  if (d !== null && Number.isNaN(d.getTime())) {
    violations.push({ field, description: 'must be a valid timestamp' });
    return null;
  }
  return d;
}

/**
 * A request's input as far as its wire form could be read, and the fields it could not read
 * (undefined enum values, unreadable timestamps: left out of `input`). The domain adds these to
 * its own checks of the rest, so one answer names every bad field.
 */
export interface WithViolations<T> {
  input: T;
  violations: FieldViolation[];
}

/** The list query of a request, and the fields the wire form got wrong (see WithViolations). */
export function listInputFromPb(req: ListNotificationsRequest): WithViolations<ListInput> {
  const v: FieldViolation[] = [];
  const input: ListInput = {
    userId: req.userId,
    statuses: enumFilterFromPb(PbStatus, req.statuses, 'statuses', statusFromName, v),
    channels: enumFilterFromPb(PbChannel, req.channels, 'channels', channelFromName, v),
    createdAfter: dateFilterFromPb(req.createdAfter, 'created_after', v),
    createdBefore: dateFilterFromPb(req.createdBefore, 'created_before', v),
    pageSize: req.pageSize,
    pageToken: req.pageToken,
  };
  return { input, violations: v };
}

/** The stats query of a request, and the fields the wire form got wrong (see WithViolations). */
export function statsInputFromPb(req: GetStatsRequest): WithViolations<StatsInput> {
  const v: FieldViolation[] = [];
  const input: StatsInput = {
    createdAfter: dateFilterFromPb(req.createdAfter, 'created_after', v),
    createdBefore: dateFilterFromPb(req.createdBefore, 'created_before', v),
    channels: enumFilterFromPb(PbChannel, req.channels, 'channels', channelFromName, v),
  };
  return { input, violations: v };
}

/**
 * The watch target of a request (null when it names none), and the fields the wire form got
 * wrong (see WithViolations).
 */
export function watchTargetFromPb(
  req: WatchNotificationsRequest,
): WithViolations<WatchTarget | null> {
  const t = req.target;
  const v: FieldViolation[] = [];
  const statuses = enumFilterFromPb(PbStatus, req.statuses, 'statuses', statusFromName, v);
  if (t.case === undefined) {
    v.push({ field: 'target', description: 'notification_id or user_id is required' });
  }
  // Each option belongs to one kind of target: set on the other, it would be silently ignored.
  if (t.case === 'userId' && req.afterVersion !== undefined) {
    v.push({ field: 'after_version', description: 'applies to a notification_id watch only' });
  }
  if (t.case === 'notificationId' && req.initialCount !== 0) {
    v.push({ field: 'initial_count', description: 'applies to a user_id watch only' });
  }
  const input: WatchTarget | null =
    t.case === undefined
      ? null
      : t.case === 'notificationId'
        ? {
            notificationId: t.value,
            afterVersion: req.afterVersion === undefined ? null : Number(req.afterVersion),
            statuses,
          }
        : { userId: t.value, initialCount: req.initialCount, statuses };
  return { input, violations: v };
}

/** A dead-letter filter; bad channels or timestamps add violations named under `filter.`. */
function deadLetterFilterFromPb(
  f: PbDeadLetterFilter | undefined,
  violations: FieldViolation[],
): DeadLetterFilter {
  return {
    channels: enumFilterFromPb(
      PbChannel,
      f?.channels ?? [],
      'filter.channels',
      channelFromName,
      violations,
    ),
    errorContains: f?.errorContains ?? '',
    after: dateFilterFromPb(f?.deadLetteredAfter, 'filter.dead_lettered_after', violations),
    before: dateFilterFromPb(f?.deadLetteredBefore, 'filter.dead_lettered_before', violations),
  };
}

/** The dead-letter list query of a request, and the fields the wire form got wrong. */
export function listDeadLettersInputFromPb(
  req: ListDeadLettersRequest,
): WithViolations<ListDeadLettersInput> {
  const v: FieldViolation[] = [];
  const filter = deadLetterFilterFromPb(req.filter, v);
  return { input: { filter, pageSize: req.pageSize, pageToken: req.pageToken }, violations: v };
}

/**
 * What a replay or purge request selects, and the fields the wire form got wrong. An unset filter
 * is null; a set but empty one selects every dead letter.
 */
export function deadLetterSelectionFromPb(
  req: ReplayDeadLettersRequest | PurgeDeadLettersRequest,
): WithViolations<DeadLetterSelection> {
  const v: FieldViolation[] = [];
  const filter = req.filter === undefined ? null : deadLetterFilterFromPb(req.filter, v);
  return { input: { ids: req.ids, filter }, violations: v };
}
