/**
 * `herald keys …` and `herald tokens issue`: tenant administration from the command line, straight
 * against the database (no running api needed). A created key is printed once, on stdout, alone,
 * so scripts can capture it.
 */
import { readFileSync } from 'node:fs';
import { parseCommandLine } from './cli-args.js';
import { fromJsonString } from '@bufbuild/protobuf';
import { TemplateSchema } from '@herald/client/gen/herald/v1/template_pb';
import { createApiKeys, SCOPES, type ApiKeyRecord } from './domain/access.js';
import { HeraldError, ValidationError } from './domain/errors.js';
import { createTemplates, type TemplateFields } from './domain/templates.js';
import type { Config } from './config.js';
import type { Logger } from './domain/ports.js';
import { newApiKey } from './infra/auth/api-keys.js';
import {
  issueUserToken,
  MAX_USER_TOKEN_TTL_SECONDS,
  tenantTokenSecret,
} from './infra/auth/user-tokens.js';
import { createApiKeyStore } from './infra/postgres/api-key-store.js';
import { createTemplateStore } from './infra/postgres/template-store.js';
import { assertSchemaCurrent, openDatabase } from './infra/postgres/orm.js';
import { templateFieldsFromPb } from './server/template-service.js';

export const ADMIN_USAGE = `  keys create --tenant <t> --scopes send,read,admin [--name <n>]
                              create an API key (the tenant too, if new); prints it once
  keys list --tenant <t> [--all]
                              list a tenant's keys (--all: with revoked ones)
  keys revoke --tenant <t> --id <key id>
                              revoke a key
  tokens issue --tenant <t> --user <u> [--ttl <seconds>]
                              issue a user token (HS256 JWT) for a frontend
  tokens secret --tenant <t>  print the tenant's token signing secret (base64url), for a
                              backend that mints its tenant's tokens without the master secret
  templates push --tenant <t> --file <template.json>
                              create the template, or add a version unless unchanged
                              (the file is a herald.v1.Template in JSON)`;

/** Runs an admin command; resolves with the exit code. */
export async function runAdminCommand(
  argv: string[],
  config: Config,
  logger: Logger,
): Promise<number> {
  const { positionals, values } = parseCommandLine(
    argv,
    {
      tenant: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      id: { type: 'string' },
      user: { type: 'string' },
      ttl: { type: 'string' },
      all: { type: 'boolean' },
      file: { type: 'string' },
    },
    2,
  );
  const [group, action] = positionals;
  const known =
    group === 'tokens'
      ? ['issue', 'secret']
      : group === 'templates'
        ? ['push']
        : ['create', 'list', 'revoke'];
  if (!known.includes(action ?? '')) {
    console.error(`herald: ${group} ${action ?? ''}: unknown; use one of:\n${ADMIN_USAGE}`);
    return 2;
  }
  const tenant = values.tenant;
  if (tenant === undefined || tenant === '') {
    console.error(`herald: ${group} ${action ?? ''}: --tenant is required`);
    return 2;
  }

  if (group === 'tokens' && action === 'secret') {
    if (config.auth.tokenSecretIsDevelopmentDefault) {
      logger.warn({}, 'HERALD_TOKEN_SECRET is not set: this is the development secret');
    }
    try {
      console.log(tenantTokenSecret(config.auth.tokenSecret, tenant).toString('base64url'));
    } catch (err) {
      console.error(`herald: tokens secret: ${(err as Error).message}`);
      return 2;
    }
    return 0;
  }
  if (group === 'tokens' && action === 'issue') {
    if (!values.user) {
      console.error('herald: tokens issue: --user is required');
      return 2;
    }
    const ttlSeconds = values.ttl === undefined ? 900 : Number(values.ttl);
    if (
      !Number.isInteger(ttlSeconds) ||
      ttlSeconds < 1 ||
      ttlSeconds > MAX_USER_TOKEN_TTL_SECONDS
    ) {
      console.error(
        `herald: tokens issue: --ttl must be a whole number of seconds from 1 to ${MAX_USER_TOKEN_TTL_SECONDS}`,
      );
      return 2;
    }
    if (config.auth.tokenSecretIsDevelopmentDefault) {
      logger.warn({}, 'HERALD_TOKEN_SECRET is not set: signing with the development secret');
    }
    console.log(
      issueUserToken({
        master: config.auth.tokenSecret,
        tenantId: tenant,
        userId: values.user,
        ttlSeconds,
      }),
    );
    return 0;
  }
  let template: TemplateFields | null = null;
  if (group === 'templates') {
    if (!values.file) {
      console.error('herald: templates push: --file is required');
      return 2;
    }
    try {
      template = templateFieldsFromPb(
        fromJsonString(TemplateSchema, readFileSync(values.file, 'utf8')),
      );
    } catch (err) {
      console.error(`herald: templates push: ${values.file}: ${(err as Error).message}`);
      return 2;
    }
  }
  const db = await openDatabase(config.database, logger);
  try {
    await assertSchemaCurrent(db);
    if (template !== null) return await pushTemplate(db.pool, tenant, template);
    const store = createApiKeyStore(db.pool);
    // Other processes notice a revocation within their key cache time (HERALD_KEY_CACHE_MS).
    const keys = createApiKeys({ store, newApiKey });
    switch (action) {
      case 'create': {
        const scopes = (values.scopes ?? '').split(',').filter((s) => s !== '');
        await store.ensureTenant(tenant, tenant);
        try {
          const { apiKey, record } = await keys.create(tenant, values.name ?? 'cli', scopes);
          console.error(
            `API key ${record.prefix} (id ${record.id}) for tenant ${tenant}, scopes ${record.scopes.join(',')}; shown once:`,
          );
          console.log(apiKey);
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          console.error(
            `herald: keys create: ${err.message.replace('scopes', '--scopes')} (scopes: ${SCOPES.join(', ')})`,
          );
          return 2;
        }
        return 0;
      }
      case 'list':
        for (const k of await keys.list(tenant, values.all === true)) console.log(describe(k));
        return 0;
      default: {
        if (!values.id) {
          console.error('herald: keys revoke: --id is required');
          return 2;
        }
        console.log(describe(await keys.revoke(tenant, values.id)));
        return 0;
      }
    }
  } finally {
    await db.close();
  }
}

/** `templates push`: what changed on stdout; what is wrong, one line per field, on stderr. */
async function pushTemplate(
  pool: Parameters<typeof createTemplateStore>[0],
  tenant: string,
  fields: TemplateFields,
): Promise<number> {
  try {
    const { template, outcome } = await createTemplates(createTemplateStore(pool)).push(
      tenant,
      fields,
    );
    console.log(`${template.id} version ${template.version} (${outcome})`);
    return 0;
  } catch (err) {
    if (err instanceof ValidationError) {
      for (const v of err.violations)
        console.error(`herald: templates push: ${v.field}: ${v.description}`);
      return 2;
    }
    if (err instanceof HeraldError) {
      console.error(`herald: templates push: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

function describe(k: ApiKeyRecord): string {
  const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
  return `${k.id}  ${k.prefix}  ${k.scopes.join(',')}  ${state}  ${k.name}`;
}
