/**
 * herald.v1.NotificationService over the notification use cases.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ConnectError, HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import { BadRequestSchema, RetryInfoSchema } from '@herald/client/gen/google/rpc/error_details_pb';
import type { NotificationService as NotificationServiceDesc } from '@herald/client/gen/herald/v1/notification_pb';
import {
  CancelNotificationResponseSchema,
  DeliverNowResponseSchema,
  GetNotificationResponseSchema,
  GetStatsResponseSchema,
  ListNotificationsResponseSchema,
  SendBatchErrorSchema,
  SendBatchResponseSchema,
  SendResponseSchema,
  WatchNotificationsResponseSchema,
  type CancelNotificationRequest,
  type DeliverNowRequest,
  type GetNotificationRequest,
  type GetStatsRequest,
  type SendBatchError,
  type SendBatchRequest,
  type SendBatchResult,
  type ListNotificationsRequest,
  type SendRequest,
  type WatchNotificationsRequest,
  type WatchNotificationsResponse,
} from '@herald/client/gen/herald/v1/notification_pb';
import type { Principal } from '../domain/access.js';
import { NotFoundError } from '../domain/errors.js';
import { validateWatch, type Notifications, type SendResult } from '../domain/notifications.js';
import type { Logger } from '../domain/ports.js';
import { principalOf, requestUser } from './auth.js';
import { toConnectError } from './errors.js';
import { rateLimitHeaders } from './rate-limit-headers.js';
import {
  channelToPb,
  eventToPb,
  listInputFromPb,
  notificationToPb,
  sendInputFromPb,
  statsInputFromPb,
  statusToPb,
  watchTargetFromPb,
} from './mapping.js';

type Impl = ServiceImpl<typeof NotificationServiceDesc>;

export class NotificationServiceHandler implements Impl {
  /** WatchNotifications streams open right now (a leak shows here). */
  openWatches = 0;

  constructor(
    private readonly notifications: Notifications,
    private readonly logger: Logger,
  ) {}

  async send(req: SendRequest, ctx: HandlerContext) {
    const {
      notification: n,
      replayed,
      rateLimit,
    } = await this.notifications.send(principalOf(ctx).tenantId, sendInputFromPb(req));
    if (rateLimit !== null) {
      for (const [k, v] of Object.entries(rateLimitHeaders(rateLimit)))
        ctx.responseHeader.set(k, v);
    }
    return sendResponseOf({ notification: n, replayed });
  }

  /**
   * Each item is a Send of its own; its error is mapped exactly as Send's would be (code, message,
   * BadRequest, RetryInfo) but reported in its result. No RateLimit headers: items may count
   * against different users' limits.
   */
  async sendBatch(req: SendBatchRequest, ctx: HandlerContext) {
    const outcomes = await this.notifications.sendBatch(
      principalOf(ctx).tenantId,
      req.items,
      sendInputFromPb,
      ctx.signal,
    );
    // One unexpected failure usually fails many items alike (a database down): log it once.
    const logger = firstOfEachLevel(this.logger);
    let accepted = 0;
    const results = outcomes.map((o): SendBatchResult['result'] => {
      if (o.ok) {
        accepted += 1;
        return { case: 'accepted', value: sendResponseOf(o.result) };
      }
      return { case: 'error', value: batchErrorOf(toConnectError(o.error, logger, 'SendBatch')) };
    });
    return create(SendBatchResponseSchema, {
      results: results.map((result) => ({ result })),
      acceptedCount: accepted,
      failedCount: outcomes.length - accepted,
    });
  }

  async getStats(req: GetStatsRequest, ctx: HandlerContext) {
    const { input, violations } = statsInputFromPb(req);
    const s = await this.notifications.stats(principalOf(ctx).tenantId, input, violations);
    return create(GetStatsResponseSchema, {
      rows: s.rows.map((r) => ({
        channel: channelToPb(r.channel),
        status: statusToPb(r.status),
        count: BigInt(r.count),
      })),
      total: BigInt(s.total),
      createdAfter: timestampFromDate(s.createdAfter),
      createdBefore: timestampFromDate(s.createdBefore),
    });
  }

  async getNotification(req: GetNotificationRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const { notification, events } = await this.notifications.get(p.tenantId, req.id);
    // A user token sees only its user's notifications; another's does not exist for it.
    if (p.userId !== null && notification.userId !== p.userId) {
      throw new NotFoundError(`notification ${req.id}`);
    }
    return create(GetNotificationResponseSchema, {
      notification: notificationToPb(notification),
      events: events.map(eventToPb),
    });
  }

  async listNotifications(req: ListNotificationsRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const { input, violations } = listInputFromPb(req);
    const page = await this.notifications.list(p.tenantId, ownUser(p, input), violations);
    return create(ListNotificationsResponseSchema, {
      notifications: page.notifications.map(notificationToPb),
      nextPageToken: page.nextPageToken,
    });
  }

  async cancelNotification(req: CancelNotificationRequest, ctx: HandlerContext) {
    const n = await this.notifications.cancel(principalOf(ctx).tenantId, req.id);
    return create(CancelNotificationResponseSchema, { notification: notificationToPb(n) });
  }

  async deliverNow(req: DeliverNowRequest, ctx: HandlerContext) {
    const n = await this.notifications.deliverNow(principalOf(ctx).tenantId, req.id);
    return create(DeliverNowResponseSchema, { notification: notificationToPb(n) });
  }

  async *watchNotifications(
    req: WatchNotificationsRequest,
    ctx: HandlerContext,
  ): AsyncGenerator<WatchNotificationsResponse> {
    this.openWatches += 1;
    try {
      const p = principalOf(ctx);
      const { input, violations } = watchTargetFromPb(req);
      // An empty user_id is a user token's own user.
      const target = p.userId !== null && input && 'userId' in input ? ownUser(p, input) : input;
      // Every bad field at once, before the ownership check below reads anything.
      validateWatch(target, violations);
      // Not found unless it is the token's user's: the same answer as for an unknown id.
      if (
        p.userId !== null &&
        'notificationId' in target &&
        (await this.notifications.get(p.tenantId, target.notificationId)).notification.userId !==
          p.userId
      ) {
        throw new NotFoundError(`notification ${target.notificationId}`);
      }
      for await (const s of this.notifications.watch(p.tenantId, target, ctx.signal)) {
        yield create(WatchNotificationsResponseSchema, {
          notification: notificationToPb(s.notification),
          event: eventToPb(s.event),
        });
      }
    } catch (err) {
      if (ctx.signal.aborted) return;
      throw toConnectError(err, this.logger, 'WatchNotifications');
    } finally {
      this.openWatches -= 1;
    }
  }
}

/** What Send answers for an accepted (or replayed) notification. */
function sendResponseOf(r: Pick<SendResult, 'notification' | 'replayed'>) {
  return create(SendResponseSchema, {
    id: r.notification.id,
    status: statusToPb(r.notification.status),
    createdAt: timestampFromDate(r.notification.createdAt),
    replayed: r.replayed,
  });
}

/** A batch item's error: the code name, message and details Send would have failed with. */
function batchErrorOf(err: ConnectError): SendBatchError {
  return create(SendBatchErrorSchema, {
    code: codeToString(err.code).toUpperCase(),
    message: err.rawMessage,
    fieldViolations: err
      .findDetails(BadRequestSchema)
      .flatMap((d) => d.fieldViolations)
      .map((v) => ({ field: v.field, description: v.description })),
    retryDelay: err.findDetails(RetryInfoSchema)[0]?.retryDelay,
  });
}

/** A logger that passes on the first warning and the first error only. */
function firstOfEachLevel(logger: Logger): Logger {
  const done = new Set<string>();
  const first = (level: 'warn' | 'error') => (obj: object, msg?: string) => {
    if (done.has(level)) return;
    done.add(level);
    logger[level](obj, msg);
  };
  return {
    debug: (obj, msg) => logger.debug(obj, msg),
    info: (obj, msg) => logger.info(obj, msg),
    warn: first('warn'),
    error: first('error'),
  };
}

/**
 * For a user token: the request's user filter must be the token's user (an empty one becomes it);
 * for anyone else the request as it is.
 */
function ownUser<T extends { userId: string }>(p: Principal, input: T): T {
  return { ...input, userId: requestUser(p, input.userId, 'its own notifications') };
}
