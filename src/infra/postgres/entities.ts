/**
 * MikroORM entities for the notification tables. They describe the schema for the ORM (admin
 * tooling, migrations, low-volume queries); the hot paths use single SQL statements in
 * notification-store.ts.
 */
import { defineEntity, p } from '@mikro-orm/postgresql';
import type { Content, PinnedTemplate } from '../../domain/notification.js';

export const NotificationEntity = defineEntity({
  name: 'Notification',
  tableName: 'notification',
  properties: {
    id: p.uuid().primary(),
    tenantId: p.text(),
    userId: p.text(),
    channel: p.text(),
    priority: p.text(),
    category: p.text().nullable(),
    content: p.json<Content>(),
    to: p.text().nullable().fieldName('to'),
    idempotencyKey: p.text().nullable(),
    requestHash: p.text().nullable(),
    correlationId: p.text().nullable(),
    metadata: p.json<Record<string, string>>(),
    status: p.text(),
    attempt: p.integer(),
    attemptFloor: p.integer(),
    version: p.integer(),
    generation: p.integer(),
    sendAt: p.datetime().nullable(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    deliveredAt: p.datetime().nullable(),
    nextAttemptAt: p.datetime().nullable(),
    leaseUntil: p.datetime().nullable(),
    publishedAt: p.datetime().nullable(),
    provider: p.text().nullable(),
    providerMessageId: p.text().nullable(),
    lastError: p.text().nullable(),
    deadLetteredAt: p.datetime().nullable(),
    template: p.json<PinnedTemplate>().nullable(),
    statusReason: p.text().nullable(),
    seenAt: p.datetime().nullable(),
    readAt: p.datetime().nullable(),
    archivedAt: p.datetime().nullable(),
  },
});

export const NotificationEventEntity = defineEntity({
  name: 'NotificationEvent',
  tableName: 'notification_event',
  properties: {
    notificationId: p.uuid().primary(),
    version: p.integer().primary(),
    status: p.text(),
    attempt: p.integer(),
    provider: p.text().nullable(),
    error: p.text().nullable(),
    generation: p.integer(),
    time: p.datetime(),
    inboxChange: p.text().nullable(),
  },
});

export const TenantEntity = defineEntity({
  name: 'Tenant',
  tableName: 'tenant',
  properties: {
    id: p.text().primary(),
    name: p.text(),
    createdAt: p.datetime(),
  },
});

export const ApiKeyEntity = defineEntity({
  name: 'ApiKey',
  tableName: 'api_key',
  properties: {
    id: p.uuid().primary(),
    tenantId: p.text(),
    prefix: p.text().unique(),
    secretHash: p.text(),
    name: p.text(),
    scopes: p.array<string>(),
    createdAt: p.datetime(),
    revokedAt: p.datetime().nullable(),
  },
});
