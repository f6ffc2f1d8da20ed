/**
 * Recipients: what Herald knows about a tenant's users — email, phone, push tokens, time zone,
 * locale, custom data — and where a Send without a direct address goes. Deleting a recipient
 * deletes its contact data; a push token the provider reports invalid is removed.
 */
import {
  FailedPreconditionError,
  NotFoundError,
  ValidationError,
  type FieldViolation,
} from './errors.js';
import type { Channel } from './notification.js';
import {
  checkMap,
  requireUserId,
  validateAddress,
  validateUserId,
  type Bad,
} from './validation.js';

export interface PushTokenRecord {
  token: string;
  registeredAt: Date;
}

export interface Recipient {
  tenantId: string;
  userId: string;
  email: string | null;
  phone: string | null;
  timeZone: string | null;
  locale: string | null;
  data: Record<string, string>;
  /** Most recently registered first. */
  pushTokens: PushTokenRecord[];
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A recipient as a write's answer shows it to a caller that may not read (mayRead): only what
 * that write set. An upsert sets every field but the push tokens, so those are left out; a token's
 * registration sets that token, so everything else is. A `send` key can then register a device
 * for any user id without learning the user's email, phone, data or other devices.
 */
export function writtenPart(r: Recipient, wrote: 'fields' | { pushToken: string }): Recipient {
  if (wrote === 'fields') return { ...r, pushTokens: [] };
  return {
    ...r,
    email: null,
    phone: null,
    timeZone: null,
    locale: null,
    data: {},
    pushTokens: r.pushTokens.filter((t) => t.token === wrote.pushToken),
  };
}

export type RecipientFields = Pick<
  Recipient,
  'userId' | 'email' | 'phone' | 'timeZone' | 'locale' | 'data'
>;

export interface RecipientStore {
  /** Creates or replaces the fields (not the push tokens); the recipient as stored. */
  upsert(tenantId: string, fields: RecipientFields): Promise<Recipient>;
  get(tenantId: string, userId: string): Promise<Recipient | null>;
  /** Deletes the recipient and its push tokens; false when there was none. */
  delete(tenantId: string, userId: string): Promise<boolean>;
  /** Adds (or refreshes) a token, creating an empty recipient if needed. */
  registerPushToken(tenantId: string, userId: string, token: string): Promise<Recipient>;
  /** False when the token was not registered to the user. */
  removePushToken(tenantId: string, userId: string, token: string): Promise<boolean>;
}

const LIMITS = { dataEntries: 32, dataKey: 64, dataValue: 1_024, locale: 35 } as const;

/** Every bad field of a recipient, at once. */
export function validateRecipient(r: RecipientFields): void {
  const v: FieldViolation[] = [];
  const bad: Bad = (field, description) => v.push({ field, description });
  validateUserId(r.userId, bad, 'recipient.user_id');
  if (r.email !== null) validateAddress(r.email, 'email', bad, 'recipient.email');
  if (r.phone !== null) validateAddress(r.phone, 'sms', bad, 'recipient.phone');
  if (r.timeZone !== null && !isTimeZone(r.timeZone)) {
    bad('recipient.time_zone', 'must be an IANA time zone, e.g. Europe/London');
  }
  if (r.locale !== null && (r.locale.length > LIMITS.locale || !isLocale(r.locale))) {
    bad('recipient.locale', 'must be a BCP 47 locale, e.g. en-GB');
  }
  checkMap(r.data, 'recipient.data', LIMITS.dataEntries, LIMITS.dataKey, LIMITS.dataValue, bad);
  if (v.length > 0) throw new ValidationError(v);
}

/**
 * True for an IANA time zone name Intl knows (at most 64 characters). Not a UTC offset (`+02:00`,
 * which Intl also takes): it has no daylight-saving rules, so quiet hours would be an hour off
 * half the year. (Names are kept as given: Intl's own spelling of some is the older one, e.g.
 * Asia/Calcutta for Asia/Kolkata.)
 */
export function isTimeZone(tz: string): boolean {
  if (/^[+-]/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return tz.length <= 64;
  } catch {
    return false;
  }
}

function isLocale(locale: string): boolean {
  try {
    return Intl.getCanonicalLocales(locale).length === 1;
  } catch {
    return false;
  }
}

function validateToken(userId: string, token: string): void {
  const v: FieldViolation[] = [];
  const bad: Bad = (field, description) => v.push({ field, description });
  validateUserId(userId, bad);
  if (token === '') bad('token', 'is required');
  else validateAddress(token, 'push', bad, 'token');
  if (v.length > 0) throw new ValidationError(v);
}

const ADDRESS_FIELD: Partial<Record<Channel, { field: 'email' | 'phone' | 'push'; name: string }>> =
  {
    email: { field: 'email', name: 'email address' },
    sms: { field: 'phone', name: 'phone number' },
    push: { field: 'push', name: 'push token' },
  };

/** Whether Sends on `channel` need an address (in_app needs none; webhook's is the provider's). */
export function needsAddress(channel: Channel): boolean {
  return ADDRESS_FIELD[channel] !== undefined;
}

/**
 * The address a Send without `to` goes to: the recipient's email, phone, or latest push token.
 * Null for channels that need none (in_app) or that take theirs from the provider (webhook);
 * FailedPrecondition when the channel needs one the recipient does not have.
 */
export function addressFor(
  recipient: Recipient | null,
  userId: string,
  channel: Channel,
): string | null {
  const need = ADDRESS_FIELD[channel];
  if (need === undefined) return null;
  const address =
    need.field === 'push'
      ? (recipient?.pushTokens[0]?.token ?? null)
      : (recipient?.[need.field] ?? null);
  if (address === null) {
    throw new FailedPreconditionError(
      `user ${JSON.stringify(userId)} has no ${need.name} for ${channel}: register one with RecipientService or pass to`,
    );
  }
  return address;
}

export function createRecipients(store: RecipientStore) {
  return {
    async upsert(tenantId: string, fields: RecipientFields) {
      validateRecipient(fields);
      return store.upsert(tenantId, fields);
    },
    async get(tenantId: string, userId: string) {
      requireUserId(userId);
      const r = await store.get(tenantId, userId);
      if (r === null) throw new NotFoundError(`recipient ${JSON.stringify(userId)}`);
      return r;
    },
    async delete(tenantId: string, userId: string) {
      requireUserId(userId);
      return store.delete(tenantId, userId);
    },
    async registerPushToken(tenantId: string, userId: string, token: string) {
      validateToken(userId, token);
      return store.registerPushToken(tenantId, userId, token);
    },
    async removePushToken(tenantId: string, userId: string, token: string) {
      validateToken(userId, token);
      return store.removePushToken(tenantId, userId, token);
    },
  };
}

export type Recipients = ReturnType<typeof createRecipients>;
