/**
 * Validation of Send requests. Every rule is written next to its field in
 * proto/herald/v1/notification.proto; this module is where they are enforced. All violations are
 * collected, so a caller fixes every field in one round trip.
 */
import { ValidationError, type FieldViolation } from './errors.js';
import { CHANNELS, PRIORITIES, type Channel, type Content, type Priority } from './notification.js';

/** A Send request as it arrives, before validation. Enum values are names or a description. */
export interface SendInput {
  userId: string;
  channel: string;
  content: Content | null;
  to: string;
  idempotencyKey: string;
  priority: string;
  category: string;
  /** An invalid Date (NaN) stands for a timestamp that could not be represented. */
  sendAt: Date | null;
  metadata: Record<string, string>;
  correlationId: string;
  /** A template to render instead of `content` (exactly one of the two). */
  template?: TemplateRef | null;
}

/** A Send's template reference: which template and version, with the variables' values. */
export interface TemplateRef {
  id: string;
  /** 0: the latest at the time of the Send. */
  version: number;
  variables: Record<string, string>;
}

/** A valid Send request. Empty optional strings have become null. */
export interface SendCommand {
  userId: string;
  channel: Channel;
  content: Content;
  to: string | null;
  idempotencyKey: string | null;
  priority: Priority;
  category: string | null;
  sendAt: Date | null;
  metadata: Record<string, string>;
  correlationId: string | null;
  /**
   * Set for a Send by template (absent otherwise, so hashes of content Sends stay as they were);
   * `content` is empty until the template is rendered.
   */
  template?: TemplateRef;
}

export const LIMITS = {
  userId: 128,
  subject: 255,
  title: 255,
  body: 65_536,
  smsBody: 1_600,
  html: 262_144,
  dataEntries: 64,
  dataKey: 64,
  dataValue: 4_096,
  email: 254,
  pushToken: 4_096,
  url: 2_048,
  idempotencyKey: 128,
  category: 64,
  metadataEntries: 32,
  metadataKey: 64,
  metadataValue: 512,
  correlationId: 128,
  sendAtAheadMs: 366 * 24 * 3600 * 1000,
  templateId: 64,
  templateVariables: 64,
  templateVariableKey: 64,
  templateVariableValue: 4_096,
} as const;

// Control characters (C0, DEL, C1) are never valid in identifiers.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** True when `s` holds a control character (C0, DEL or C1). */
export function hasControlCharacters(s: string): boolean {
  return CONTROL.test(s);
}
const LINE_BREAK = /[\r\n]/;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const CATEGORY = /^[a-z0-9][a-z0-9._-]*$/;
// Template ids share the category alphabet: readable in a Send, safe in a URL.
const TEMPLATE_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const E164 = /^\+[1-9][0-9]{6,14}$/;
// Deliberately plain: one @, no spaces, a dot in the domain. Providers do the final check.
const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const WHITESPACE = /\s/;
// PostgreSQL text and jsonb cannot store U+0000: a NUL would fail the insert with an internal
// error, and fail every other Send batched into the same statement with it.
const NUL = '\u0000';
const NO_NUL = 'must not contain NUL (U+0000) characters';

/** A user id: 1 to 128 characters, no control characters. */
export function validateUserId(userId: string, bad: Bad, field = 'user_id'): void {
  if (userId.length === 0) bad(field, 'is required');
  else if (userId.length > LIMITS.userId) bad(field, `must be at most ${LIMITS.userId} characters`);
  else if (CONTROL.test(userId)) bad(field, 'must not contain control characters');
}

/** Throws a ValidationError naming `field` unless `userId` is a valid user id. */
export function requireUserId(userId: string, field = 'user_id'): void {
  const v: FieldViolation[] = [];
  validateUserId(userId, (f, description) => v.push({ field: f, description }), field);
  if (v.length > 0) throw new ValidationError(v);
}

/** A category (Send, preferences): at most 64 characters of [a-z0-9._-], not starting with a symbol. */
export function validateCategory(category: string, bad: Bad, field = 'category'): void {
  if (category.length > LIMITS.category)
    bad(field, `must be at most ${LIMITS.category} characters`);
  else if (!CATEGORY.test(category))
    bad(
      field,
      "must be lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
    );
}

/** This deployment's rules on top of the contract's (configuration decides them). */
export interface SendRules {
  /**
   * Refusals of a webhook's `to` (a valid http(s) URL): the rule `url` breaks, or null.
   * HERALD_WEBHOOK_PRIVATE_ADDRESSES=deny refuses hosts that are private addresses.
   */
  webhookUrl?: (url: URL) => string | null;
}

/** Validates a Send request; throws ValidationError listing every bad field. */
export function validateSend(input: SendInput, now: Date, rules: SendRules = {}): SendCommand {
  const v: FieldViolation[] = [];
  const bad = (field: string, description: string) => v.push({ field, description });

  validateUserId(input.userId, bad);

  const channel = (CHANNELS as readonly string[]).includes(input.channel)
    ? (input.channel as Channel)
    : null;
  if (channel === null) {
    bad(
      'channel',
      input.channel === ''
        ? `is required; one of ${CHANNELS.join(', ')}`
        : `must be one of ${CHANNELS.join(', ')} (got ${input.channel})`,
    );
  }

  const priority =
    input.priority === ''
      ? 'normal'
      : (PRIORITIES as readonly string[]).includes(input.priority)
        ? (input.priority as Priority)
        : null;
  if (priority === null) {
    bad('priority', `must be one of ${PRIORITIES.join(', ')} (got ${input.priority})`);
  }

  const template = input.template ?? null;
  const content = template === null ? input.content : (input.content ?? {});
  if (input.content === null && template === null)
    bad('content', 'content or template is required');
  else if (input.content !== null && template !== null)
    bad('template', 'must not be set together with content; use one of the two');
  else if (template !== null) validateTemplateRef(template, bad);
  else if (content !== null) validateContent(content, channel, bad);

  if (input.to !== '' && channel !== null)
    validateAddress(input.to, channel, bad, 'to', rules.webhookUrl);

  if (input.idempotencyKey.length > LIMITS.idempotencyKey)
    bad('idempotency_key', `must be at most ${LIMITS.idempotencyKey} characters`);
  else if (input.idempotencyKey !== '' && !PRINTABLE_ASCII.test(input.idempotencyKey))
    bad('idempotency_key', 'must be printable ASCII');

  if (input.category !== '') validateCategory(input.category, bad);

  if (input.sendAt !== null) {
    const t = input.sendAt.getTime();
    if (Number.isNaN(t)) bad('send_at', 'must be a valid timestamp');
    else if (t - now.getTime() > LIMITS.sendAtAheadMs)
      bad('send_at', 'must be at most 366 days in the future');
  }

  checkMap(
    input.metadata,
    'metadata',
    LIMITS.metadataEntries,
    LIMITS.metadataKey,
    LIMITS.metadataValue,
    bad,
  );

  if (input.correlationId.length > LIMITS.correlationId)
    bad('correlation_id', `must be at most ${LIMITS.correlationId} characters`);
  else if (CONTROL.test(input.correlationId))
    bad('correlation_id', 'must not contain control characters');

  if (v.length > 0 || channel === null || priority === null || content === null) {
    throw new ValidationError(v);
  }
  const sendAt =
    input.sendAt !== null && input.sendAt.getTime() > now.getTime() ? input.sendAt : null;
  return {
    userId: input.userId,
    channel,
    content: normalizeContent(content),
    to: input.to === '' ? null : input.to,
    idempotencyKey: input.idempotencyKey === '' ? null : input.idempotencyKey,
    priority,
    category: input.category === '' ? null : input.category,
    sendAt,
    metadata: input.metadata,
    correlationId: input.correlationId === '' ? null : input.correlationId,
    ...(template === null ? {} : { template }),
  };
}

/** A template id: 1 to 64 lower-case letters, digits, '.', '_', '-', starting with a letter or digit. */
export function isTemplateId(id: string): boolean {
  return TEMPLATE_ID.test(id);
}

const TEMPLATE_ID_RULE =
  "must be 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit";

/** The rule of a template id, for `field`. */
export function validateTemplateId(id: string, bad: Bad, field: string): void {
  if (id === '') bad(field, 'is required');
  else if (!isTemplateId(id)) bad(field, TEMPLATE_ID_RULE);
}

function validateTemplateRef(ref: TemplateRef, bad: Bad): void {
  validateTemplateId(ref.id, bad, 'template.id');
  if (ref.version < 0) bad('template.version', 'must be at least 0 (0: the latest)');
  checkTemplateVariables(ref.variables, 'template.variables', bad);
}

/** The limits of the variables a Send or a preview passes. */
export function checkTemplateVariables(
  variables: Record<string, string>,
  field: string,
  bad: Bad,
): void {
  checkMap(
    variables,
    field,
    LIMITS.templateVariables,
    LIMITS.templateVariableKey,
    LIMITS.templateVariableValue,
    bad,
  );
}

/**
 * The content rules of a Send, applied to content rendered from a template: the violations, named
 * as for `content` (`content.subject`, …), for the caller to report under its own field.
 */
export function renderedContentViolations(content: Content, channel: Channel): FieldViolation[] {
  const v: FieldViolation[] = [];
  validateContent(content, channel, (field, description) => v.push({ field, description }));
  return v;
}

export type Bad = (field: string, description: string) => void;

function validateContent(c: Content, channel: Channel | null, bad: Bad): void {
  const subject = c.subject ?? '';
  const body = c.body ?? '';
  const html = c.html ?? '';
  const title = c.title ?? '';
  const data = c.data ?? {};

  if (subject.length > LIMITS.subject)
    bad('content.subject', `must be at most ${LIMITS.subject} characters`);
  else if (LINE_BREAK.test(subject)) bad('content.subject', 'must not contain line breaks');
  const bodyLimit = channel === 'sms' ? LIMITS.smsBody : LIMITS.body;
  if (body.length > bodyLimit) bad('content.body', `must be at most ${bodyLimit} characters`);
  if (html.length > LIMITS.html) bad('content.html', `must be at most ${LIMITS.html} characters`);
  if (title.length > LIMITS.title)
    bad('content.title', `must be at most ${LIMITS.title} characters`);
  for (const [name, text] of Object.entries({ subject, body, html, title })) {
    if (text.includes(NUL)) bad(`content.${name}`, NO_NUL);
  }
  checkMap(data, 'content.data', LIMITS.dataEntries, LIMITS.dataKey, LIMITS.dataValue, bad);

  if (channel !== null) {
    for (const m of missingParts(c, channel)) {
      bad(
        `content.${m.field}`,
        m.anyOf.length === 1
          ? `is required for ${channel}`
          : `${m.anyOf.join(' or ')} is required for ${channel}`,
      );
    }
  }
  if (html !== '' && channel !== null && channel !== 'email')
    bad('content.html', 'is only allowed for email');
}

/** A part of a notification's content. */
export type ContentPart = keyof Content;

/**
 * What each channel's content needs: from each group, at least one part that is not blank (data:
 * not empty); a group that has none is reported under its `field`. Template parts are checked
 * against the same groups (their `text` standing for `body`).
 */
const REQUIRED_PARTS: Record<
  Channel,
  readonly { anyOf: readonly ContentPart[]; field: ContentPart }[]
> = {
  email: [
    { anyOf: ['subject'], field: 'subject' },
    { anyOf: ['body', 'html'], field: 'body' },
  ],
  sms: [{ anyOf: ['body'], field: 'body' }],
  push: [{ anyOf: ['title', 'body'], field: 'body' }],
  in_app: [{ anyOf: ['title', 'body'], field: 'body' }],
  webhook: [{ anyOf: ['body', 'data'], field: 'body' }],
};

/** The required groups of parts (see REQUIRED_PARTS) that `c` lacks for `channel`. */
export function missingParts(
  c: Content,
  channel: Channel,
): { anyOf: readonly ContentPart[]; field: ContentPart }[] {
  const present = (part: ContentPart): boolean => {
    const value = c[part];
    if (value === undefined) return false;
    return typeof value === 'string' ? value.trim() !== '' : Object.keys(value).length > 0;
  };
  return REQUIRED_PARTS[channel].filter((group) => !group.anyOf.some(present));
}

/**
 * The address rules of each channel, for `field` (Send's `to`, or a recipient's own fields);
 * `webhookUrl` adds the deployment's own (SendRules.webhookUrl).
 */
export function validateAddress(
  to: string,
  channel: Channel,
  bad: Bad,
  field = 'to',
  webhookUrl?: SendRules['webhookUrl'],
): void {
  if (to.includes(NUL)) {
    bad(field, NO_NUL);
    return;
  }
  switch (channel) {
    case 'email':
      if (to.length > LIMITS.email || !EMAIL.test(to))
        bad(field, `must be an email address of at most ${LIMITS.email} characters for email`);
      break;
    case 'sms':
      if (!E164.test(to))
        bad(field, 'must be an E.164 phone number (+ and 7 to 15 digits) for sms');
      break;
    case 'push':
      if (to.length > LIMITS.pushToken || WHITESPACE.test(to))
        bad(
          field,
          `must be a device token of at most ${LIMITS.pushToken} characters without whitespace for push`,
        );
      break;
    case 'webhook':
      if (to.length > LIMITS.url || !isHttpUrl(to))
        bad(field, `must be an http or https URL of at most ${LIMITS.url} characters for webhook`);
      else {
        const url = new URL(to);
        // A request cannot carry them (fetch refuses such a URL): it could never be delivered.
        if (hasCredentials(url))
          bad(field, 'must not carry credentials (user:password@) for webhook');
        else {
          const broken = webhookUrl?.(url) ?? null;
          if (broken !== null) bad(field, broken);
        }
      }
      break;
    case 'in_app':
      bad(field, 'must be empty for in_app');
      break;
  }
}

/** True when `url` carries `user:password@`, which no request can send (fetch refuses it). */
export function hasCredentials(url: URL): boolean {
  return url.username !== '' || url.password !== '';
}

/** True for an absolute http(s) URL with a host: what a webhook may be sent to. */
export function isHttpUrl(s: string): boolean {
  if (!URL.canParse(s)) return false;
  const { protocol, hostname } = new URL(s);
  return (protocol === 'http:' || protocol === 'https:') && hostname !== '';
}

export function checkMap(
  map: Record<string, string>,
  field: string,
  maxEntries: number,
  maxKey: number,
  maxValue: number,
  bad: Bad,
): void {
  const entries = Object.entries(map);
  if (entries.length > maxEntries) bad(field, `must have at most ${maxEntries} entries`);
  for (const [k, val] of entries) {
    if (k.length === 0 || k.length > maxKey)
      bad(
        `${field}[${JSON.stringify(k.slice(0, maxKey))}]`,
        `key must be 1 to ${maxKey} characters`,
      );
    else if (val.length > maxValue)
      bad(`${field}[${JSON.stringify(k)}]`, `value must be at most ${maxValue} characters`);
    else if (k.includes(NUL) || val.includes(NUL)) bad(`${field}[${JSON.stringify(k)}]`, NO_NUL);
  }
}

function normalizeContent(c: Content): Content {
  const out: Content = {};
  if (c.subject) out.subject = c.subject;
  if (c.body) out.body = c.body;
  if (c.html) out.html = c.html;
  if (c.title) out.title = c.title;
  if (c.data && Object.keys(c.data).length > 0) out.data = c.data;
  return out;
}
