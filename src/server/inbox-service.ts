/**
 * herald.v1.InboxService: a user's in-app inbox. A user token acts on its own user; an API key
 * names the user in the request.
 */
import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  GetUnreadCountResponseSchema,
  InboxFilter as PbInboxFilter,
  ListInboxResponseSchema,
  MarkAllReadResponseSchema,
  MarkInboxResponseSchema,
  MarkOutcome as PbMarkOutcome,
  type GetUnreadCountRequest,
  type InboxService,
  type ListInboxRequest,
  type MarkAllReadRequest,
  type MarkInboxRequest,
} from '@herald/client/gen/herald/v1/inbox_pb';
import { InboxChange as PbInboxChange } from '@herald/client/gen/herald/v1/notification_pb';
import type { Inbox, MarkOutcome } from '../domain/inbox.js';
import { principalOf, requestUser } from './auth.js';
import { enumFromPb, notificationToPb } from './mapping.js';

const OUTCOMES: Record<MarkOutcome, PbMarkOutcome> = {
  changed: PbMarkOutcome.CHANGED,
  unchanged: PbMarkOutcome.UNCHANGED,
  not_found: PbMarkOutcome.NOT_FOUND,
};

export class InboxServiceHandler implements ServiceImpl<typeof InboxService> {
  constructor(private readonly inbox: Inbox) {}

  async listInbox(req: ListInboxRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const page = await this.inbox.list(p.tenantId, {
      userId: requestUser(p, req.userId, 'its own inbox'),
      filter: enumFromPb(PbInboxFilter, req.filter),
      pageSize: req.pageSize,
      pageToken: req.pageToken,
    });
    return create(ListInboxResponseSchema, {
      notifications: page.notifications.map(notificationToPb),
      nextPageToken: page.nextPageToken,
    });
  }

  async markInbox(req: MarkInboxRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const { results, unreadCount } = await this.inbox.mark(p.tenantId, {
      userId: requestUser(p, req.userId, 'its own inbox'),
      ids: req.ids,
      // The domain's inbox changes are the contract's names as they are (READ).
      change: enumFromPb(PbInboxChange, req.action, (name) => name),
    });
    return create(MarkInboxResponseSchema, {
      results: results.map((r) => ({
        id: r.id,
        outcome: OUTCOMES[r.outcome],
        notification: r.notification === null ? undefined : notificationToPb(r.notification),
      })),
      unreadCount: BigInt(unreadCount),
    });
  }

  async markAllRead(req: MarkAllReadRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const { marked, unreadCount } = await this.inbox.markAllRead(
      p.tenantId,
      requestUser(p, req.userId, 'its own inbox'),
    );
    return create(MarkAllReadResponseSchema, {
      marked: BigInt(marked),
      unreadCount: BigInt(unreadCount),
    });
  }

  async getUnreadCount(req: GetUnreadCountRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const n = await this.inbox.unreadCount(p.tenantId, requestUser(p, req.userId, 'its own inbox'));
    return create(GetUnreadCountResponseSchema, { unreadCount: BigInt(n) });
  }
}
