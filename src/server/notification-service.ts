/**
 * herald.v1.NotificationService over the notification use cases.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import type { NotificationService as NotificationServiceDesc } from '@herald/client/gen/herald/v1/notification_pb';
import {
  CancelNotificationResponseSchema,
  GetNotificationResponseSchema,
  ListNotificationsResponseSchema,
  SendResponseSchema,
  WatchNotificationsResponseSchema,
  type CancelNotificationRequest,
  type GetNotificationRequest,
  type ListNotificationsRequest,
  type SendRequest,
  type WatchNotificationsRequest,
  type WatchNotificationsResponse,
} from '@herald/client/gen/herald/v1/notification_pb';
import type { Principal } from '../domain/access.js';
import { NotFoundError, PermissionDeniedError } from '../domain/errors.js';
import type { Notifications } from '../domain/notifications.js';
import type { Logger } from '../domain/ports.js';
import { principalOf } from './auth.js';
import { toConnectError } from './errors.js';
import { rateLimitHeaders } from './rate-limit-headers.js';
import {
  eventToPb,
  listInputFromPb,
  notificationToPb,
  sendInputFromPb,
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
    return create(SendResponseSchema, {
      id: n.id,
      status: statusToPb(n.status),
      createdAt: timestampFromDate(n.createdAt),
      replayed,
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
    const input = listInputFromPb(req);
    const page = await this.notifications.list(p.tenantId, ownUser(p, input, 'user_id'));
    return create(ListNotificationsResponseSchema, {
      notifications: page.notifications.map(notificationToPb),
      nextPageToken: page.nextPageToken,
    });
  }

  async cancelNotification(req: CancelNotificationRequest, ctx: HandlerContext) {
    const n = await this.notifications.cancel(principalOf(ctx).tenantId, req.id);
    return create(CancelNotificationResponseSchema, { notification: notificationToPb(n) });
  }

  async *watchNotifications(
    req: WatchNotificationsRequest,
    ctx: HandlerContext,
  ): AsyncGenerator<WatchNotificationsResponse> {
    this.openWatches += 1;
    try {
      const p = principalOf(ctx);
      const target = watchTargetFromPb(req);
      if (p.userId !== null) {
        if ('userId' in target) ownUser(p, target, 'user_id');
        // Not found unless it is the user's: the same answer as for an unknown id.
        else if (
          (await this.notifications.get(p.tenantId, target.notificationId)).notification.userId !==
          p.userId
        ) {
          throw new NotFoundError(`notification ${target.notificationId}`);
        }
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

/**
 * For a user token: the request's user filter must be the token's user (an empty one becomes it);
 * for anyone else the request as it is.
 */
function ownUser<T extends { userId: string }>(p: Principal, input: T, field: string): T {
  if (p.userId === null) return input;
  if (input.userId !== '' && input.userId !== p.userId) {
    throw new PermissionDeniedError(`${field}: a user token may only read its own notifications`);
  }
  return { ...input, userId: p.userId };
}
