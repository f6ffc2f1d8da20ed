/**
 * Authentication and authorization for every Herald RPC, in one interceptor: the caller's
 * credential becomes a Principal (tenant, scopes, and for user tokens the user), each RPC needs
 * one scope, and RPCs other than Send are capped per caller (Send has its per-user rate limit).
 * gRPC health and reflection stay open: load balancers and `buf curl` need no credentials.
 */
import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from '@connectrpc/connect';
import type { Authenticator, Principal, Scope } from '../domain/access.js';
import { requireScope } from '../domain/access.js';
import { PermissionDeniedError } from '../domain/errors.js';

/** The scope each RPC needs, by `<service>/<method>`. An RPC missing here is refused. */
const SCOPE_OF: Record<string, Scope> = {
  'herald.v1.NotificationService/Send': 'send',
  'herald.v1.NotificationService/CancelNotification': 'send',
  'herald.v1.NotificationService/DeliverNow': 'send',
  'herald.v1.NotificationService/GetNotification': 'read',
  'herald.v1.NotificationService/ListNotifications': 'read',
  'herald.v1.NotificationService/WatchNotifications': 'read',
  // SendBatch is under the per-caller cap below, unlike Send: one call is up to 1,000 items of
  // work, and items that are invalid or replayed use no rate-limit quota, so without the cap a
  // caller could make the api validate and look up without bound. A batch counts as one call, so
  // the cap (200 calls/s by default) is far above any batch rate the workers could deliver.
  'herald.v1.NotificationService/SendBatch': 'send',
  'herald.v1.NotificationService/GetStats': 'read',
  'herald.v1.DeadLetterService/ListDeadLetters': 'read',
  'herald.v1.DeadLetterService/GetDeadLetter': 'read',
  'herald.v1.DeadLetterService/ReplayDeadLetters': 'admin',
  'herald.v1.DeadLetterService/PurgeDeadLetters': 'admin',
  'herald.v1.AdminService/CreateApiKey': 'admin',
  'herald.v1.AdminService/ListApiKeys': 'admin',
  'herald.v1.AdminService/RevokeApiKey': 'admin',
  'herald.v1.RecipientService/UpsertRecipient': 'send',
  'herald.v1.RecipientService/DeleteRecipient': 'send',
  'herald.v1.RecipientService/RegisterPushToken': 'send',
  'herald.v1.RecipientService/RemovePushToken': 'send',
  'herald.v1.RecipientService/GetRecipient': 'read',
  // A template's text goes out under the tenant's name to everyone it is sent to: changing it is
  // an administrator's act, not a sender's.
  'herald.v1.TemplateService/CreateTemplate': 'admin',
  'herald.v1.TemplateService/UpdateTemplate': 'admin',
  'herald.v1.TemplateService/ArchiveTemplate': 'admin',
  'herald.v1.TemplateService/GetTemplate': 'read',
  'herald.v1.TemplateService/ListTemplates': 'read',
  'herald.v1.TemplateService/PreviewTemplate': 'read',
  'herald.v1.PreferenceService/GetPreferences': 'read',
  'herald.v1.PreferenceService/UpdatePreferences': 'send',
  'herald.v1.PreferenceService/GetTenantPreferences': 'admin',
  'herald.v1.PreferenceService/UpdateTenantPreferences': 'admin',
  'herald.v1.InboxService/ListInbox': 'read',
  'herald.v1.InboxService/GetUnreadCount': 'read',
  'herald.v1.InboxService/MarkInbox': 'send',
  'herald.v1.InboxService/MarkAllRead': 'send',
};

/**
 * What a user token may call: reads of the user's own notifications, its own inbox and its own
 * preferences. Being listed here is a user token's whole authorization (the services confine it
 * to its user), so a user token needs no scope: marking its inbox read is no `send` for a service.
 */
const USER_RPCS = new Set([
  'herald.v1.NotificationService/GetNotification',
  'herald.v1.NotificationService/ListNotifications',
  'herald.v1.NotificationService/WatchNotifications',
  'herald.v1.PreferenceService/GetPreferences',
  'herald.v1.PreferenceService/UpdatePreferences',
  'herald.v1.InboxService/ListInbox',
  'herald.v1.InboxService/GetUnreadCount',
  'herald.v1.InboxService/MarkInbox',
  'herald.v1.InboxService/MarkAllRead',
]);

const principalKey = createContextKey<Principal | null>(null, { description: 'herald principal' });

/** The authenticated caller of a handler's RPC. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (p === null) throw new ConnectError('unauthenticated', Code.Unauthenticated);
  return p;
}

/**
 * The user a request speaks for: a user token's own (an empty `user_id` means it; naming anyone
 * else is refused), or, for an API key, the request's `user_id` as given. `what` names what the
 * user token may reach, for the refusal ("its own inbox").
 */
export function requestUser(p: Principal, requested: string, what: string): string {
  if (p.userId === null) return requested;
  if (requested !== '' && requested !== p.userId) {
    throw new PermissionDeniedError(`user_id: a user token may only reach ${what}`);
  }
  return p.userId;
}

export interface AuthOptions {
  authenticator: Authenticator;
  /** Calls per second per caller for RPCs other than Send (bursts up to twice that). */
  callsPerSecond: number;
  /**
   * A stream's credential is checked again before a message goes out when this long has passed
   * since it was last checked (ms, default 1,000): a revoked key or an expired token ends it.
   */
  recheckMs?: number;
  now?: () => number;
}

export function authInterceptor(o: AuthOptions): Interceptor {
  const now = o.now ?? Date.now;
  const buckets = createBuckets(o.callsPerSecond, now);
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (service.startsWith('grpc.')) return next(req);
    const rpc = `${service}/${req.method.name}`;
    const authorization = req.header.get('authorization');
    const principal = await o.authenticator.authenticate(authorization);
    const scope = SCOPE_OF[rpc];
    if (scope === undefined) {
      throw new ConnectError(`${rpc} is not open to callers`, Code.PermissionDenied);
    }
    if (principal.kind === 'user' && !USER_RPCS.has(rpc)) {
      throw new ConnectError(
        `a user token may only read its own notifications and use its inbox and preferences, not call ${req.method.name}`,
        Code.PermissionDenied,
      );
    }
    if (principal.kind !== 'user') requireScope(principal, scope, req.method.name);
    if (req.method.name !== 'Send') {
      // A key by its id (a UUID); a user by tenant and user, as a pair: both may contain any
      // character, so joined with a separator ('a/b' + 'c', 'a' + 'b/c') two users would share.
      const caller =
        principal.keyId ?? JSON.stringify([principal.tenantId, principal.userId ?? '']);
      const waitMs = buckets.take(caller);
      if (waitMs > 0) {
        throw new ConnectError(
          `too many calls: at most ${o.callsPerSecond}/s per caller for RPCs other than Send`,
          Code.ResourceExhausted,
          { 'retry-after': String(Math.ceil(waitMs / 1000)) },
        );
      }
    }
    req.contextValues.set(principalKey, principal);
    const res = await next(req);
    if (!res.stream) return res;
    // A watch may run for days: what was true of its credential when it opened must stay true.
    const recheck = () => o.authenticator.authenticate(authorization);
    return { ...res, message: rechecked(res.message, recheck, o.recheckMs ?? 1_000, now) };
  };
}

/**
 * `messages`, with `check` run again (its rejection ending the stream) before any message that
 * comes `intervalMs` or more after the last check.
 */
async function* rechecked<T>(
  messages: AsyncIterable<T>,
  check: () => Promise<unknown>,
  intervalMs: number,
  now: () => number,
): AsyncGenerator<T> {
  let checkedAt = now();
  for await (const m of messages) {
    if (now() - checkedAt >= intervalMs) {
      await check();
      checkedAt = now();
    }
    yield m;
  }
}

/** A token bucket per caller: `rate` per second, holding at most 2 × rate. */
function createBuckets(rate: number, now: () => number) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const capacity = rate * 2;
  return {
    /** 0 when a call may go now (and takes a token); otherwise ms until one may. */
    take(caller: string): number {
      const t = now();
      const b = buckets.get(caller) ?? { tokens: capacity, at: t };
      b.tokens = Math.min(capacity, b.tokens + ((t - b.at) / 1000) * rate);
      b.at = t;
      if (buckets.size > 100_000) buckets.clear();
      buckets.set(caller, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.ceil(((1 - b.tokens) / rate) * 1000);
    },
  };
}
