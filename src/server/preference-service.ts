/**
 * herald.v1.PreferenceService: users' opt-ins, opt-outs and quiet hours, and the tenant's
 * defaults. A user token reaches only its own user's preferences.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  GetPreferencesResponseSchema,
  GetTenantPreferencesResponseSchema,
  TenantPreferencesSchema,
  UpdatePreferencesResponseSchema,
  UpdateTenantPreferencesResponseSchema,
  UserPreferencesSchema,
  type GetPreferencesRequest,
  type PreferenceRuleSchema,
  type PreferenceRule as PbRule,
  type PreferenceService,
  type QuietHours as PbQuietHours,
  type UpdatePreferencesRequest,
  type UpdateTenantPreferencesRequest,
} from '@herald/client/gen/herald/v1/preference_pb';
import { ValidationError } from '../domain/errors.js';
import {
  quietHoursOutput,
  type PreferenceRule,
  type Preferences,
  type QuietHours,
  type QuietHoursInput,
  type RuleInput,
  type TenantPreferences,
  type UserPreferences,
} from '../domain/preferences.js';
import { principalOf, requestUser } from './auth.js';
import { channelFromPb, channelToPb } from './mapping.js';

export class PreferenceServiceHandler implements ServiceImpl<typeof PreferenceService> {
  constructor(private readonly preferences: Preferences) {}

  async getPreferences(req: GetPreferencesRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const view = await this.preferences.get(
      p.tenantId,
      requestUser(p, req.userId, 'its own preferences'),
    );
    return create(GetPreferencesResponseSchema, viewToPb(view));
  }

  async updatePreferences(req: UpdatePreferencesRequest, ctx: HandlerContext) {
    const p = principalOf(ctx);
    const userId = requestUser(p, req.userId, 'its own preferences');
    if (req.preferences === undefined) {
      throw new ValidationError([{ field: 'preferences', description: 'is required' }]);
    }
    const view = await this.preferences.update(p.tenantId, {
      userId,
      rules: req.preferences.rules.map(ruleFromPb),
      quietHours: quietHoursFromPb(req.preferences.quietHours),
    });
    return create(UpdatePreferencesResponseSchema, viewToPb(view));
  }

  async getTenantPreferences(_req: unknown, ctx: HandlerContext) {
    const t = await this.preferences.getTenant(principalOf(ctx).tenantId);
    return create(GetTenantPreferencesResponseSchema, { preferences: tenantToPb(t) });
  }

  async updateTenantPreferences(req: UpdateTenantPreferencesRequest, ctx: HandlerContext) {
    const t = req.preferences;
    if (t === undefined) {
      throw new ValidationError([{ field: 'preferences', description: 'is required' }]);
    }
    const stored = await this.preferences.updateTenant(principalOf(ctx).tenantId, {
      defaultRules: t.defaultRules.map(ruleFromPb),
      requiredCategories: t.requiredCategories,
      quietHours: quietHoursFromPb(t.quietHours),
      defaultTimeZone: t.defaultTimeZone,
    });
    return create(UpdateTenantPreferencesResponseSchema, { preferences: tenantToPb(stored) });
  }
}

function ruleFromPb(r: PbRule): RuleInput {
  return { channel: channelFromPb(r.channel), category: r.category, enabled: r.enabled };
}

function quietHoursFromPb(q: PbQuietHours | undefined): QuietHoursInput | null {
  return q === undefined ? null : { enabled: q.enabled, start: q.start, end: q.end };
}

function ruleToPb(r: PreferenceRule): MessageInitShape<typeof PreferenceRuleSchema> {
  return {
    channel: r.channel === null ? 0 : channelToPb(r.channel),
    category: r.category ?? '',
    enabled: r.enabled,
  };
}

function tenantToPb(t: TenantPreferences) {
  return create(TenantPreferencesSchema, {
    defaultRules: t.defaultRules.map(ruleToPb),
    requiredCategories: t.requiredCategories,
    quietHours: quietHoursOutput(t.quietHours),
    quietHoursDefault: t.quietHoursDefault,
    defaultTimeZone: t.defaultTimeZone,
    updatedAt: t.updatedAt === null ? undefined : timestampFromDate(t.updatedAt),
  });
}

function viewToPb(v: {
  preferences: UserPreferences;
  tenant: TenantPreferences;
  effectiveQuietHours: QuietHours;
}) {
  const u = v.preferences;
  return {
    preferences: create(UserPreferencesSchema, {
      userId: u.userId,
      rules: u.rules.map(ruleToPb),
      quietHours: u.quietHours === null ? undefined : quietHoursOutput(u.quietHours),
      updatedAt: u.updatedAt === null ? undefined : timestampFromDate(u.updatedAt),
    }),
    tenant: tenantToPb(v.tenant),
    effectiveQuietHours: quietHoursOutput(v.effectiveQuietHours),
  };
}
