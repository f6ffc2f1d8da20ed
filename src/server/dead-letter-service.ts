/**
 * herald.v1.DeadLetterService over the dead-letter use cases. Errors are mapped to Connect codes
 * by the api's error interceptor (toConnectError), as for NotificationService.
 */
import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  GetDeadLetterResponseSchema,
  ListDeadLettersResponseSchema,
  PurgeDeadLettersResponseSchema,
  ReplayDeadLettersResponseSchema,
  type DeadLetterService as DeadLetterServiceDesc,
  type GetDeadLetterRequest,
  type ListDeadLettersRequest,
  type PurgeDeadLettersRequest,
  type ReplayDeadLettersRequest,
} from '@herald/client/gen/herald/v1/dead_letter_pb';
import type { DeadLetters } from '../domain/dead-letters.js';
import {
  deadLetterSelectionFromPb,
  eventToPb,
  listDeadLettersInputFromPb,
  notificationToPb,
} from './mapping.js';
import { principalOf } from './auth.js';

type Impl = ServiceImpl<typeof DeadLetterServiceDesc>;

export class DeadLetterServiceHandler implements Impl {
  constructor(private readonly deadLetters: DeadLetters) {}

  async listDeadLetters(req: ListDeadLettersRequest, ctx: HandlerContext) {
    const { input, violations } = listDeadLettersInputFromPb(req);
    const page = await this.deadLetters.list(principalOf(ctx).tenantId, input, violations);
    return create(ListDeadLettersResponseSchema, {
      deadLetters: page.deadLetters.map(notificationToPb),
      nextPageToken: page.nextPageToken,
    });
  }

  async getDeadLetter(req: GetDeadLetterRequest, ctx: HandlerContext) {
    const { notification, events } = await this.deadLetters.get(principalOf(ctx).tenantId, req.id);
    return create(GetDeadLetterResponseSchema, {
      notification: notificationToPb(notification),
      events: events.map(eventToPb),
    });
  }

  async replayDeadLetters(req: ReplayDeadLettersRequest, ctx: HandlerContext) {
    const { input, violations } = deadLetterSelectionFromPb(req);
    const { ids, more } = await this.deadLetters.replay(
      principalOf(ctx).tenantId,
      input,
      violations,
    );
    return create(ReplayDeadLettersResponseSchema, {
      replayedIds: ids,
      replayedCount: ids.length,
      more,
    });
  }

  async purgeDeadLetters(req: PurgeDeadLettersRequest, ctx: HandlerContext) {
    const { input, violations } = deadLetterSelectionFromPb(req);
    const { ids, more } = await this.deadLetters.purge(
      principalOf(ctx).tenantId,
      input,
      violations,
    );
    return create(PurgeDeadLettersResponseSchema, {
      purgedIds: ids,
      purgedCount: ids.length,
      more,
    });
  }
}
