/**
 * herald.v1.RecipientService: the caller's tenant's recipients and their push tokens.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  DeleteRecipientResponseSchema,
  GetRecipientResponseSchema,
  RecipientSchema,
  RegisterPushTokenResponseSchema,
  RemovePushTokenResponseSchema,
  UpsertRecipientResponseSchema,
  type DeleteRecipientRequest,
  type GetRecipientRequest,
  type RecipientService,
  type RegisterPushTokenRequest,
  type RemovePushTokenRequest,
  type UpsertRecipientRequest,
} from '@herald/client/gen/herald/v1/recipient_pb';
import { ValidationError } from '../domain/errors.js';
import { mayRead } from '../domain/access.js';
import { writtenPart, type Recipient, type Recipients } from '../domain/recipients.js';
import { principalOf } from './auth.js';

export class RecipientServiceHandler implements ServiceImpl<typeof RecipientService> {
  constructor(private readonly recipients: Recipients) {}

  async upsertRecipient(req: UpsertRecipientRequest, ctx: HandlerContext) {
    const r = req.recipient;
    if (r === undefined) {
      throw new ValidationError([{ field: 'recipient', description: 'is required' }]);
    }
    const p = principalOf(ctx);
    const stored = await this.recipients.upsert(p.tenantId, {
      userId: r.userId,
      email: r.email || null,
      phone: r.phone || null,
      timeZone: r.timeZone || null,
      locale: r.locale || null,
      data: r.data,
    });
    return create(UpsertRecipientResponseSchema, {
      recipient: recipientToPb(mayRead(p) ? stored : writtenPart(stored, 'fields')),
    });
  }

  async getRecipient(req: GetRecipientRequest, ctx: HandlerContext) {
    const r = await this.recipients.get(principalOf(ctx).tenantId, req.userId);
    return create(GetRecipientResponseSchema, { recipient: recipientToPb(r) });
  }

  async deleteRecipient(req: DeleteRecipientRequest, ctx: HandlerContext) {
    const deleted = await this.recipients.delete(principalOf(ctx).tenantId, req.userId);
    return create(DeleteRecipientResponseSchema, { deleted });
  }

  async registerPushToken(req: RegisterPushTokenRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const r = await this.recipients.registerPushToken(p.tenantId, req.userId, req.token);
    return create(RegisterPushTokenResponseSchema, {
      recipient: recipientToPb(mayRead(p) ? r : writtenPart(r, { pushToken: req.token })),
    });
  }

  async removePushToken(req: RemovePushTokenRequest, ctx: HandlerContext) {
    const removed = await this.recipients.removePushToken(
      principalOf(ctx).tenantId,
      req.userId,
      req.token,
    );
    return create(RemovePushTokenResponseSchema, { removed });
  }
}

function recipientToPb(r: Recipient) {
  return create(RecipientSchema, {
    userId: r.userId,
    email: r.email ?? '',
    phone: r.phone ?? '',
    timeZone: r.timeZone ?? '',
    locale: r.locale ?? '',
    data: r.data,
    pushTokens: r.pushTokens.map((t) => ({
      token: t.token,
      registeredAt: timestampFromDate(t.registeredAt),
    })),
    createdAt: timestampFromDate(r.createdAt),
    updatedAt: timestampFromDate(r.updatedAt),
  });
}
