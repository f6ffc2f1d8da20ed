/**
 * herald.v1.AdminService: the caller's tenant's API keys.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  ApiKeySchema,
  CreateApiKeyResponseSchema,
  ListApiKeysResponseSchema,
  RevokeApiKeyResponseSchema,
  type AdminService,
  type CreateApiKeyRequest,
  type ListApiKeysRequest,
  type RevokeApiKeyRequest,
} from '@herald/client/gen/herald/v1/admin_pb';
import type { ApiKeyRecord, ApiKeys } from '../domain/access.js';
import { principalOf } from './auth.js';

export class AdminServiceHandler implements ServiceImpl<typeof AdminService> {
  constructor(private readonly keys: ApiKeys) {}

  async createApiKey(req: CreateApiKeyRequest, ctx: HandlerContext) {
    const { apiKey, record } = await this.keys.create(
      principalOf(ctx).tenantId,
      req.name,
      req.scopes,
    );
    return create(CreateApiKeyResponseSchema, { apiKey, key: apiKeyToPb(record) });
  }

  async listApiKeys(req: ListApiKeysRequest, ctx: HandlerContext) {
    const keys = await this.keys.list(principalOf(ctx).tenantId, req.includeRevoked);
    return create(ListApiKeysResponseSchema, { keys: keys.map(apiKeyToPb) });
  }

  async revokeApiKey(req: RevokeApiKeyRequest, ctx: HandlerContext) {
    const key = await this.keys.revoke(principalOf(ctx).tenantId, req.id);
    return create(RevokeApiKeyResponseSchema, { key: apiKeyToPb(key) });
  }
}

function apiKeyToPb(k: ApiKeyRecord) {
  return create(ApiKeySchema, {
    id: k.id,
    prefix: k.prefix,
    name: k.name,
    scopes: k.scopes,
    createdAt: timestampFromDate(k.createdAt),
    revokedAt: k.revokedAt ? timestampFromDate(k.revokedAt) : undefined,
  });
}
