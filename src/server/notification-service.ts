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
import type { Notifications } from '../domain/notifications.js';
import type { Logger } from '../domain/ports.js';
import { toConnectError } from './errors.js';
import {
  eventToPb,
  listInputFromPb,
  notificationToPb,
  sendInputFromPb,
  statusToPb,
  watchTargetFromPb,
} from './mapping.js';

type Impl = ServiceImpl<typeof NotificationServiceDesc>;

/** Resolves the caller's tenant; a fixed development tenant until authentication lands. */
export type TenantResolver = (ctx: HandlerContext) => string;

export class NotificationServiceHandler implements Impl {
  constructor(
    private readonly notifications: Notifications,
    private readonly tenantOf: TenantResolver,
    private readonly logger: Logger,
  ) {}

  async send(req: SendRequest, ctx: HandlerContext) {
    const { notification: n, replayed } = await this.notifications.send(
      this.tenantOf(ctx),
      sendInputFromPb(req),
    );
    return create(SendResponseSchema, {
      id: n.id,
      status: statusToPb(n.status),
      createdAt: timestampFromDate(n.createdAt),
      replayed,
    });
  }

  async getNotification(req: GetNotificationRequest, ctx: HandlerContext) {
    const { notification, events } = await this.notifications.get(this.tenantOf(ctx), req.id);
    return create(GetNotificationResponseSchema, {
      notification: notificationToPb(notification),
      events: events.map(eventToPb),
    });
  }

  async listNotifications(req: ListNotificationsRequest, ctx: HandlerContext) {
    const page = await this.notifications.list(this.tenantOf(ctx), listInputFromPb(req));
    return create(ListNotificationsResponseSchema, {
      notifications: page.notifications.map(notificationToPb),
      nextPageToken: page.nextPageToken,
    });
  }

  async cancelNotification(req: CancelNotificationRequest, ctx: HandlerContext) {
    const n = await this.notifications.cancel(this.tenantOf(ctx), req.id);
    return create(CancelNotificationResponseSchema, { notification: notificationToPb(n) });
  }

  async *watchNotifications(
    req: WatchNotificationsRequest,
    ctx: HandlerContext,
  ): AsyncGenerator<WatchNotificationsResponse> {
    try {
      const target = watchTargetFromPb(req);
      for await (const s of this.notifications.watch(this.tenantOf(ctx), target, ctx.signal)) {
        yield create(WatchNotificationsResponseSchema, {
          notification: notificationToPb(s.notification),
          event: eventToPb(s.event),
        });
      }
    } catch (err) {
      if (ctx.signal.aborted) return;
      throw toConnectError(err, this.logger, 'WatchNotifications');
    }
  }
}
