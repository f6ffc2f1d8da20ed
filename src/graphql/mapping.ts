/**
 * Between the api's protobuf messages and the GraphQL schema's types, and from Connect errors to
 * GraphQL errors with `extensions.code` (unexpected ones are masked by the gateway).
 */
import {
  timestampDate,
  timestampFromDate,
  type Duration,
  type Timestamp,
} from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import {
  Channel as PbChannel,
  InboxChange as PbInboxChange,
  NotificationStatus as PbStatus,
  Priority as PbPriority,
  type Content as PbContent,
  type Notification as PbNotification,
  type NotificationEvent as PbEvent,
  type GetStatsResponse,
  type SendBatchResult,
  type SendRequestSchema,
} from '@herald/client';
import { BadRequestSchema, RetryInfoSchema } from '@herald/client/gen/google/rpc/error_details_pb';
import type { Recipient as PbRecipient } from '@herald/client/gen/herald/v1/recipient_pb';
import type {
  PreviewTemplateResponse,
  Template as PbTemplate,
} from '@herald/client/gen/herald/v1/template_pb';
import type {
  PreferenceRule as PbPreferenceRule,
  QuietHours as PbQuietHours,
  TenantPreferences as PbTenantPreferences,
  UserPreferences as PbUserPreferences,
} from '@herald/client/gen/herald/v1/preference_pb';
import { GraphQLError } from 'graphql';
import type {
  Channel,
  Content,
  FieldViolation,
  InboxChange,
  KeyValueInput,
  Notification,
  NotificationEvent,
  NotificationStatus,
  Preferences,
  PreferencesInput,
  PreferenceRule,
  Priority,
  QuietHours,
  Recipient,
  RecipientInput,
  SendNotificationInput,
  SendNotificationResult,
  Stats,
  Template,
  TemplatePreview,
} from './generated/resolvers.js';

const iso = (t: Timestamp | undefined): string | null =>
  t ? timestampDate(t).toISOString() : null;
const keyValues = (m: Record<string, string>) =>
  Object.entries(m).map(([key, value]) => ({ key, value }));

/** A list of GraphQL key-value inputs as the api's map (null or omitted: empty). */
export const recordOf = (
  kvs: readonly KeyValueInput[] | null | undefined,
): Record<string, string> => Object.fromEntries((kvs ?? []).map((kv) => [kv.key, kv.value]));

/** A retry delay in whole milliseconds, as extensions.retryAfterMs carries it. */
const millisOf = (d: Duration): number => Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);

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
    content: contentFromPb(n.content),
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
    statusReason: n.statusReason || null,
    seenAt: iso(n.seenAt),
    readAt: iso(n.readAt),
    archivedAt: iso(n.archivedAt),
    template: n.template
      ? { id: n.template.id, version: n.template.version, locale: n.template.locale }
      : null,
    events: (events ?? []).map(eventFromPb),
    eventsLoaded: events !== undefined,
  };
}

/** A notification's (or a preview's) content: unset parts are null. */
function contentFromPb(c: PbContent | undefined): Content {
  return {
    subject: c?.subject || null,
    body: c?.body || null,
    html: c?.html || null,
    title: c?.title || null,
    data: keyValues(c?.data ?? {}),
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
    inboxChange:
      e.inboxChange === PbInboxChange.UNSPECIFIED
        ? null
        : (PbInboxChange[e.inboxChange] as InboxChange),
  };
}

export const channelToPb = (c: Channel): PbChannel => PbChannel[c];

function ruleFromPb(r: PbPreferenceRule): PreferenceRule {
  return {
    channel: r.channel === PbChannel.UNSPECIFIED ? null : (PbChannel[r.channel] as Channel),
    category: r.category || null,
    enabled: r.enabled,
  };
}

function quietHoursFromPb(q: PbQuietHours): QuietHours {
  return { enabled: q.enabled, start: q.start || null, end: q.end || null };
}

/** A user's preferences, with the tenant settings they are decided against, for GraphQL. */
export function preferencesFromPb(res: {
  preferences?: PbUserPreferences;
  tenant?: PbTenantPreferences;
  effectiveQuietHours?: PbQuietHours;
}): Preferences {
  return {
    rules: (res.preferences?.rules ?? []).map(ruleFromPb),
    quietHours: res.preferences?.quietHours ? quietHoursFromPb(res.preferences.quietHours) : null,
    effectiveQuietHours: res.effectiveQuietHours
      ? quietHoursFromPb(res.effectiveQuietHours)
      : { enabled: false, start: null, end: null },
    requiredCategories: res.tenant?.requiredCategories ?? [],
    defaultRules: (res.tenant?.defaultRules ?? []).map(ruleFromPb),
    defaultTimeZone: res.tenant?.defaultTimeZone ?? 'UTC',
    updatedAt: iso(res.preferences?.updatedAt),
  };
}

/** UpdatePreferences' `preferences` from the GraphQL input. */
export function preferencesInputToPb(input: PreferencesInput) {
  return {
    rules: input.rules.map((r) => ({
      channel: r.channel ? PbChannel[r.channel] : PbChannel.UNSPECIFIED,
      category: r.category ?? '',
      enabled: r.enabled,
    })),
    quietHours: input.quietHours
      ? {
          enabled: input.quietHours.enabled,
          start: input.quietHours.start ?? '',
          end: input.quietHours.end ?? '',
        }
      : undefined,
  };
}
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
  const d = parseDateTime(value);
  if (d === null) {
    throw badArgument(
      field,
      'must be an ISO 8601 date-time with a time zone, e.g. 2026-11-21T12:00:00Z',
    );
  }
  return timestampFromDate(d);
}

/** The most items a page holds (the api's page_size limit). */
export const MAX_FIRST = 500;

/**
 * A connection's `first` as the api's page_size: null or omitted is 0 (the api's default, 50);
 * anything outside 1 to 500 is a BAD_USER_INPUT error naming `first` (0 would otherwise read as
 * "the default", and the api would name its own page_size).
 */
export function firstArg(first: number | null | undefined): number {
  if (first === null || first === undefined) return 0;
  if (first < 1 || first > MAX_FIRST)
    throw badArgument('first', `must be 1 to ${MAX_FIRST}; null or omitted: 50`);
  return first;
}

function badArgument(field: string, description: string): GraphQLError {
  return new GraphQLError(`${field}: ${description}`, {
    extensions: { code: 'BAD_USER_INPUT', fieldViolations: [{ field, description }] },
  });
}

// RFC 3339's date-time (ISO 8601 with the offset required), as protobuf's JSON reads Timestamps.
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * The instant of an RFC 3339 date-time, or null for anything else: another type (DateTime is a
 * custom scalar, so any JSON value arrives here), no time zone (it would be read in the
 * process's), a date alone, or a day the month does not have (Date would roll it over).
 */
function parseDateTime(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const m = DATE_TIME.exec(value);
  if (m === null) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
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
    extensions.retryAfterMs = millisOf(retry.retryDelay);
  }
  return new GraphQLError(err.rawMessage, { extensions });
}

/**
 * The api's SendRequest for a sendNotification(s) input. `field` prefixes the field an invalid
 * sendAt is named by (`items[3].` in a batch), as the api would name it.
 */
export function sendRequestFromInput(
  input: SendNotificationInput,
  field = '',
): MessageInitShape<typeof SendRequestSchema> {
  return {
    userId: input.userId,
    channel: channelToPb(input.channel),
    content: input.content
      ? {
          subject: input.content.subject ?? '',
          body: input.content.body ?? '',
          html: input.content.html ?? '',
          title: input.content.title ?? '',
          data: recordOf(input.content.data),
        }
      : undefined,
    template: input.template
      ? {
          id: input.template.id,
          version: input.template.version ?? 0,
          variables: recordOf(input.template.variables),
        }
      : undefined,
    to: input.to ?? '',
    idempotencyKey: input.idempotencyKey ?? '',
    priority: input.priority ? priorityToPb(input.priority) : 0,
    category: input.category ?? '',
    sendAt: timestampArg(input.sendAt, `${field}send_at`),
    metadata: recordOf(input.metadata),
    correlationId: input.correlationId ?? '',
  };
}

/** GraphQL codes by the api's code names (INVALID_ARGUMENT), as SendBatch reports them. */
const CODES_BY_NAME = new Map(
  Object.entries(CODES).map(([code, name]) => [
    codeToString(Number(code) as Code).toUpperCase(),
    name,
  ]),
);

/**
 * The result of a sendNotifications input the gateway itself found bad (sendRequestFromInput
 * threw BAD_USER_INPUT): its error as the api reports a bad item's. Anything else is rethrown.
 */
export function badInputResult(err: unknown): SendNotificationResult {
  if (!(err instanceof GraphQLError) || err.extensions.code !== 'BAD_USER_INPUT') throw err;
  return failedResult({
    code: 'BAD_USER_INPUT',
    message: err.message,
    fieldViolations: (err.extensions.fieldViolations ?? []) as FieldViolation[],
    retryAfterMs: null,
  });
}

/** A sendNotifications result that carries only its error. */
function failedResult(error: SendNotificationResult['error']): SendNotificationResult {
  return { id: null, status: null, createdAt: null, replayed: null, error };
}

/** One result of SendBatch, its error coded as graphqlErrorFrom codes a whole call's. */
export function sendResultFromPb(r: SendBatchResult): SendNotificationResult {
  if (r.result.case === 'accepted') {
    const a = r.result.value;
    return {
      id: a.id,
      status: PbStatus[a.status] as NotificationStatus,
      createdAt: iso(a.createdAt),
      replayed: a.replayed,
      error: null,
    };
  }
  // An unset result is an answer the api never gives: reported as an internal error.
  const e = r.result.case === 'error' ? r.result.value : undefined;
  return failedResult({
    code: CODES_BY_NAME.get(e?.code ?? '') ?? 'INTERNAL',
    message: e?.message ?? 'internal error',
    fieldViolations: (e?.fieldViolations ?? []).map((v) => ({
      field: v.field,
      description: v.description,
    })),
    retryAfterMs: e?.retryDelay ? millisOf(e.retryDelay) : null,
  });
}

export function statsFromPb(s: GetStatsResponse): Stats {
  return {
    createdAfter: iso(s.createdAfter) ?? '',
    createdBefore: iso(s.createdBefore) ?? '',
    rows: s.rows.map((r) => ({
      channel: PbChannel[r.channel] as Channel,
      status: PbStatus[r.status] as NotificationStatus,
      count: Number(r.count),
    })),
    total: Number(s.total),
  };
}

/** Runs an api call, turning its errors into GraphQL errors. */
export async function callApi<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw graphqlErrorFrom(err);
  }
}

/**
 * An api call whose NOT_FOUND means "there is no such thing" to GraphQL: null instead of an
 * error. Other errors are turned into GraphQL errors as callApi does.
 */
export async function callApiOrNull<T>(call: () => Promise<T>): Promise<T | null> {
  try {
    return await call();
  } catch (err) {
    const mapped = graphqlErrorFrom(err);
    if (mapped instanceof GraphQLError && mapped.extensions.code === 'NOT_FOUND') return null;
    throw mapped;
  }
}

/**
 * A Relay connection over one page of an api list. `cursor` gives the page token that continues
 * after a node, so a client can resume after any edge.
 */
export function connectionOf<P, N>(
  items: readonly P[],
  nextPageToken: string,
  node: (item: P) => N,
  cursor: (item: P, node: N) => string,
) {
  const edges = items.map((item) => {
    const n = node(item);
    return { node: n, cursor: cursor(item, n) };
  });
  return {
    edges,
    pageInfo: { hasNextPage: nextPageToken !== '', endCursor: edges.at(-1)?.cursor ?? null },
  };
}

/** A template version for GraphQL; locales sorted so the answer is stable. */
export function templateFromPb(t: PbTemplate): Template {
  return {
    id: t.id,
    version: t.version,
    latestVersion: t.latestVersion,
    description: t.description || null,
    defaultLocale: t.defaultLocale,
    variables: t.variables.map((v) => ({
      name: v.name,
      required: v.required,
      defaultValue: v.required ? null : v.defaultValue,
      description: v.description || null,
    })),
    locales: Object.entries(t.locales)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([locale, p]) => ({
        locale,
        email: p.email
          ? { subject: p.email.subject, text: p.email.text || null, html: p.email.html || null }
          : null,
        sms: p.sms ? { text: p.sms.text } : null,
        push: p.push ? messageParts(p.push) : null,
        inApp: p.inApp ? messageParts(p.inApp) : null,
        webhook: p.webhook
          ? { body: p.webhook.body || null, data: keyValues(p.webhook.data) }
          : null,
      })),
    createdAt: iso(t.createdAt) ?? '',
    versionCreatedAt: iso(t.versionCreatedAt) ?? '',
    archivedAt: iso(t.archivedAt),
  };
}

function messageParts(p: { title: string; body: string; data: Record<string, string> }) {
  return { title: p.title || null, body: p.body || null, data: keyValues(p.data) };
}

/** A recipient for GraphQL: unset strings are null. */
export function recipientFromPb(r: PbRecipient): Recipient {
  return {
    userId: r.userId,
    email: r.email || null,
    phone: r.phone || null,
    timeZone: r.timeZone || null,
    locale: r.locale || null,
    data: keyValues(r.data),
    pushTokens: r.pushTokens.map((t) => ({
      token: t.token,
      registeredAt: iso(t.registeredAt) ?? '',
    })),
    createdAt: iso(r.createdAt) ?? '',
    updatedAt: iso(r.updatedAt) ?? '',
  };
}

/** UpsertRecipient's `recipient` from the GraphQL input: null and omitted fields are unset. */
export function recipientInputToPb(input: RecipientInput) {
  return {
    userId: input.userId,
    email: input.email ?? '',
    phone: input.phone ?? '',
    timeZone: input.timeZone ?? '',
    locale: input.locale ?? '',
    data: recordOf(input.data),
  };
}

/** A PreviewTemplate answer for GraphQL. */
export function templatePreviewFromPb(p: PreviewTemplateResponse): TemplatePreview {
  return {
    version: p.version,
    contents: p.contents.map((c) => ({
      channel: PbChannel[c.channel] as Channel,
      locale: c.locale,
      content: contentFromPb(c.content),
    })),
    violations: p.violations.map((v) => ({ field: v.field, description: v.description })),
  };
}
