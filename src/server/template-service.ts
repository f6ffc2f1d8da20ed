/**
 * herald.v1.TemplateService: the caller's tenant's templates, their versions and previews.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  ArchiveTemplateResponseSchema,
  CreateTemplateResponseSchema,
  GetTemplateResponseSchema,
  ListTemplatesResponseSchema,
  PreviewTemplateResponseSchema,
  TemplateSchema,
  UpdateTemplateResponseSchema,
  type ArchiveTemplateRequest,
  type CreateTemplateRequest,
  type GetTemplateRequest,
  type ListTemplatesRequest,
  type PreviewTemplateRequest,
  type Template as PbTemplate,
  type TemplateParts as PbTemplateParts,
  type TemplateService,
  type UpdateTemplateRequest,
} from '@herald/client/gen/herald/v1/template_pb';
import { ValidationError } from '../domain/errors.js';
import type { Channel } from '../domain/notification.js';
import type {
  TemplateFields,
  TemplateParts,
  Templates,
  TemplateVersion,
} from '../domain/templates.js';
import { principalOf } from './auth.js';
import { channelFromPb, channelToPb, contentToPb } from './mapping.js';

export class TemplateServiceHandler implements ServiceImpl<typeof TemplateService> {
  constructor(private readonly templates: Templates) {}

  async createTemplate(req: CreateTemplateRequest, ctx: HandlerContext) {
    const t = await this.templates.create(
      principalOf(ctx).tenantId,
      templateFieldsFromPb(req.template),
    );
    return create(CreateTemplateResponseSchema, { template: templateToPb(t) });
  }

  async updateTemplate(req: UpdateTemplateRequest, ctx: HandlerContext) {
    const t = await this.templates.update(
      principalOf(ctx).tenantId,
      templateFieldsFromPb(req.template),
      req.expectedVersion,
    );
    return create(UpdateTemplateResponseSchema, { template: templateToPb(t) });
  }

  async getTemplate(req: GetTemplateRequest, ctx: HandlerContext) {
    const t = await this.templates.get(principalOf(ctx).tenantId, req.id, req.version);
    return create(GetTemplateResponseSchema, { template: templateToPb(t) });
  }

  async listTemplates(req: ListTemplatesRequest, ctx: HandlerContext) {
    const page = await this.templates.list(principalOf(ctx).tenantId, {
      pageSize: req.pageSize,
      pageToken: req.pageToken,
      includeArchived: req.includeArchived,
    });
    return create(ListTemplatesResponseSchema, {
      templates: page.templates.map(templateToPb),
      nextPageToken: page.nextPageToken,
    });
  }

  async archiveTemplate(req: ArchiveTemplateRequest, ctx: HandlerContext) {
    const t = await this.templates.archive(principalOf(ctx).tenantId, req.id);
    return create(ArchiveTemplateResponseSchema, { template: templateToPb(t) });
  }

  async previewTemplate(req: PreviewTemplateRequest, ctx: HandlerContext) {
    const channel = channelFromPb(req.channel);
    if (channel.startsWith('unknown')) {
      throw new ValidationError([
        { field: 'channel', description: `must be a defined channel (got ${req.channel})` },
      ]);
    }
    const r = await this.templates.preview(principalOf(ctx).tenantId, {
      id: req.id,
      version: req.version,
      draft: req.draft ? templateFieldsFromPb(req.draft, 'draft') : null,
      variables: req.variables,
      locale: req.locale,
      channel: channel as Channel | '',
    });
    return create(PreviewTemplateResponseSchema, {
      version: r.version,
      contents: r.contents.map((c) => ({
        channel: channelToPb(c.channel),
        locale: c.locale,
        content: contentToPb(c.content),
      })),
      violations: r.violations,
    });
  }
}

/** A request's template fields; ValidationError naming `field` when it is missing. */
export function templateFieldsFromPb(
  t: PbTemplate | undefined,
  field = 'template',
): TemplateFields {
  if (t === undefined) throw new ValidationError([{ field, description: 'is required' }]);
  return {
    id: t.id,
    description: t.description,
    defaultLocale: t.defaultLocale,
    variables: t.variables.map((v) => ({
      name: v.name,
      required: v.required,
      defaultValue: v.defaultValue,
      description: v.description,
    })),
    locales: Object.fromEntries(
      Object.entries(t.locales).map(([locale, parts]) => [locale, partsFromPb(parts)]),
    ),
  };
}

function partsFromPb(p: PbTemplateParts): TemplateParts {
  const out: TemplateParts = {};
  if (p.email) out.email = { subject: p.email.subject, text: p.email.text, html: p.email.html };
  if (p.sms) out.sms = { text: p.sms.text };
  if (p.push) out.push = { title: p.push.title, body: p.push.body, data: { ...p.push.data } };
  if (p.inApp) out.inApp = { title: p.inApp.title, body: p.inApp.body, data: { ...p.inApp.data } };
  if (p.webhook) out.webhook = { body: p.webhook.body, data: { ...p.webhook.data } };
  return out;
}

export function templateToPb(t: TemplateVersion): PbTemplate {
  return create(TemplateSchema, {
    id: t.id,
    version: t.version,
    latestVersion: t.latestVersion,
    description: t.description,
    defaultLocale: t.defaultLocale,
    variables: t.variables,
    locales: Object.fromEntries(
      Object.entries(t.locales).map(([locale, p]) => [
        locale,
        { email: p.email, sms: p.sms, push: p.push, inApp: p.inApp, webhook: p.webhook },
      ]),
    ),
    createdAt: timestampFromDate(t.createdAt),
    versionCreatedAt: timestampFromDate(t.versionCreatedAt),
    archivedAt: t.archivedAt === null ? undefined : timestampFromDate(t.archivedAt),
  });
}
