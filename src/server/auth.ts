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

/** The scope each RPC needs, by `<service>/<method>`. An RPC missing here is refused. */
const SCOPE_OF: Record<string, Scope> = {
  'herald.v1.NotificationService/Send': 'send',
  'herald.v1.NotificationService/CancelNotification': 'send',
  'herald.v1.NotificationService/GetNotification': 'read',
  'herald.v1.NotificationService/ListNotifications': 'read',
  'herald.v1.NotificationService/WatchNotifications': 'read',
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
};

/** What a user token may call: reads of the user's own notifications. */
const USER_RPCS = new Set([
  'herald.v1.NotificationService/GetNotification',
  'herald.v1.NotificationService/ListNotifications',
  'herald.v1.NotificationService/WatchNotifications',
]);

const principalKey = createContextKey<Principal | null>(null, { description: 'herald principal' });

/** The authenticated caller of a handler's RPC. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (p === null) throw new ConnectError('unauthenticated', Code.Unauthenticated);
  return p;
}

export interface AuthOptions {
  authenticator: Authenticator;
  /** Calls per second per caller for RPCs other than Send (bursts up to twice that). */
  callsPerSecond: number;
  now?: () => number;
}

export function authInterceptor(o: AuthOptions): Interceptor {
  const buckets = createBuckets(o.callsPerSecond, o.now ?? Date.now);
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (service.startsWith('grpc.')) return next(req);
    const rpc = `${service}/${req.method.name}`;
    const principal = await o.authenticator.authenticate(req.header.get('authorization'));
    const scope = SCOPE_OF[rpc];
    if (scope === undefined) {
      throw new ConnectError(`${rpc} is not open to callers`, Code.PermissionDenied);
    }
    if (principal.kind === 'user' && !USER_RPCS.has(rpc)) {
      throw new ConnectError(
        `a user token may only read its own notifications, not call ${req.method.name}`,
        Code.PermissionDenied,
      );
    }
    requireScope(principal, scope, req.method.name);
    if (req.method.name !== 'Send') {
      const caller = principal.keyId ?? `${principal.tenantId}/${principal.userId ?? ''}`;
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
    return next(req);
  };
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
