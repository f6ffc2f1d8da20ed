/**
 * Templates: a tenant's message texts as series of immutable versions, each with declared
 * variables and per-locale, per-channel parts. Versions are checked (syntax, declared variables,
 * limits) when stored, so a Send only picks a locale variant and fills in values. The Send path
 * uses `renderForSend`: one fresh read of the template's state per Send (archived? latest
 * version?) and the version itself from an in-process cache, since versions never change.
 */
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  ValidationError,
  type FieldViolation,
} from './errors.js';
import { canonicalJson } from './canonical-json.js';
import { CHANNELS, type Channel, type Content, type PinnedTemplate } from './notification.js';
import {
  isVariableName,
  MAX_VARIABLE_NAME,
  parseTemplate,
  referencedVariables,
  renderSegments,
  type Segment,
} from './template-render.js';
import { decodePageToken, pageOf } from './page-token.js';
import {
  checkMap,
  checkTemplateVariables,
  LIMITS,
  missingParts,
  renderedContentViolations,
  validateTemplateId,
  type Bad,
  type TemplateRef,
} from './validation.js';

export interface EmailParts {
  subject: string;
  text: string;
  html: string;
}
export interface SmsParts {
  text: string;
}
/** Push and in-app parts. */
export interface MessageParts {
  title: string;
  body: string;
  data: Record<string, string>;
}
export interface WebhookParts {
  body: string;
  data: Record<string, string>;
}

/** One locale's variant: the parts of the channels it covers. */
export interface TemplateParts {
  email?: EmailParts;
  sms?: SmsParts;
  push?: MessageParts;
  inApp?: MessageParts;
  webhook?: WebhookParts;
}

export interface TemplateVariable {
  name: string;
  required: boolean;
  /** Used when an optional variable is not given. */
  defaultValue: string;
  description: string;
}

/** What a caller writes: the fields of one version. */
export interface TemplateFields {
  id: string;
  description: string;
  defaultLocale: string;
  variables: TemplateVariable[];
  locales: Record<string, TemplateParts>;
}

/** One stored version, with the template's own state. */
export interface TemplateVersion extends TemplateFields {
  version: number;
  latestVersion: number;
  /** When version 1 was created. */
  createdAt: Date;
  versionCreatedAt: Date;
  archivedAt: Date | null;
}

/** What a Send needs to know, read fresh on every Send. */
export interface TemplateSendLookup {
  /** The version the Send renders (the latest when it asked for 0). */
  version: number;
  archived: boolean;
  /** False when the template has no such version. */
  versionExists: boolean;
  /** The version's fields; null when the caller said it has them cached (or there is none). */
  fields: TemplateFields | null;
}

export interface TemplateStore {
  /** Stores version 1; null when the id is taken. */
  create(tenantId: string, fields: TemplateFields): Promise<TemplateVersion | null>;
  /**
   * Stores the next version, atomically with bumping the latest. `expectedVersion` (when not
   * null) must be the latest.
   */
  addVersion(
    tenantId: string,
    fields: TemplateFields,
    expectedVersion: number | null,
  ): Promise<
    | { ok: true; template: TemplateVersion }
    | { ok: false; reason: 'not_found' | 'archived' | 'conflict'; latestVersion: number }
  >;
  /** A version (null: the latest); null when there is no such template or version. */
  get(tenantId: string, id: string, version: number | null): Promise<TemplateVersion | null>;
  /** Latest versions by id, after `afterId`. */
  list(
    tenantId: string,
    q: { afterId: string | null; limit: number; includeArchived: boolean },
  ): Promise<TemplateVersion[]>;
  /** Sets archived_at unless set; the latest version; null when there is no such template. */
  archive(tenantId: string, id: string): Promise<TemplateVersion | null>;
  /**
   * One statement for a Send: the template's state and the version's fields, unless the version
   * is one of `cached`. Null when there is no such template.
   */
  forSend(
    tenantId: string,
    id: string,
    version: number | null,
    cached: readonly number[],
  ): Promise<TemplateSendLookup | null>;
}

export const TEMPLATE_LIMITS = {
  description: 256,
  variables: 64,
  variableDefault: 1_024,
  locales: 50,
  locale: 35,
} as const;

export const TEMPLATE_PAGE_SIZE = { default: 50, max: 500 } as const;

/** The channels in Channel order, with the name of their parts in the contract. */
const CHANNEL_PARTS: readonly { channel: Channel; key: keyof TemplateParts; field: string }[] = [
  { channel: 'email', key: 'email', field: 'email' },
  { channel: 'sms', key: 'sms', field: 'sms' },
  { channel: 'push', key: 'push', field: 'push' },
  { channel: 'in_app', key: 'inApp', field: 'in_app' },
  { channel: 'webhook', key: 'webhook', field: 'webhook' },
];

/** A part of a channel: its field name in the contract and in Content. */
export interface TextPart {
  name: string;
  content: 'subject' | 'body' | 'html' | 'title';
  limit: number;
  html?: boolean;
}
const TEXT_PARTS: Record<Channel, readonly TextPart[]> = {
  email: [
    { name: 'subject', content: 'subject', limit: LIMITS.subject },
    { name: 'text', content: 'body', limit: LIMITS.body },
    { name: 'html', content: 'html', limit: LIMITS.html, html: true },
  ],
  sms: [{ name: 'text', content: 'body', limit: LIMITS.smsBody }],
  push: [
    { name: 'title', content: 'title', limit: LIMITS.title },
    { name: 'body', content: 'body', limit: LIMITS.body },
  ],
  in_app: [
    { name: 'title', content: 'title', limit: LIMITS.title },
    { name: 'body', content: 'body', limit: LIMITS.body },
  ],
  webhook: [{ name: 'body', content: 'body', limit: LIMITS.body }],
};
const HAS_DATA: Record<Channel, boolean> = {
  email: false,
  sms: false,
  push: true,
  in_app: true,
  webhook: true,
};

/** A channel's parts, parsed. */
export interface CompiledParts {
  text: { part: TextPart; segments: Segment[] }[];
  data: [string, Segment[]][];
}

/** A version ready to render: every part parsed, locales indexed by lower-case key. */
export interface CompiledTemplate {
  fields: TemplateFields;
  /** Lower-case locale -> the locale as written -> channel -> parts. */
  locales: Map<string, { locale: string; channels: Map<Channel, CompiledParts> }>;
}

/**
 * Checks every rule of a version's fields and parses its parts; throws ValidationError naming every
 * bad field under `prefix` (e.g. `template.locales["fr"].email.html`).
 */
export function compileTemplate(
  f: TemplateFields,
  prefix = 'template',
  options: { requireId: boolean } = { requireId: true },
): CompiledTemplate {
  const v: FieldViolation[] = [];
  const bad: Bad = (field, description) => v.push({ field, description });
  if (options.requireId || f.id !== '') validateTemplateId(f.id, bad, `${prefix}.id`);
  if (f.description.length > TEMPLATE_LIMITS.description)
    bad(`${prefix}.description`, `must be at most ${TEMPLATE_LIMITS.description} characters`);
  else if (f.description.includes('\u0000')) bad(`${prefix}.description`, NO_NUL);

  const declared = new Set<string>();
  if (f.variables.length > TEMPLATE_LIMITS.variables)
    bad(`${prefix}.variables`, `must have at most ${TEMPLATE_LIMITS.variables} entries`);
  f.variables.forEach((variable, i) => {
    const at = `${prefix}.variables[${i}]`;
    if (variable.name === '') bad(`${at}.name`, 'is required');
    else if (!isVariableName(variable.name))
      bad(
        `${at}.name`,
        `must be segments of letters, digits and '_' (not starting with a digit) joined by '.', at most ${MAX_VARIABLE_NAME} characters`,
      );
    else if (declared.has(variable.name))
      bad(`${at}.name`, `${variable.name} is declared more than once`);
    declared.add(variable.name);
    if (variable.required && variable.defaultValue !== '')
      bad(`${at}.default_value`, 'must be empty for a required variable');
    if (variable.defaultValue.length > TEMPLATE_LIMITS.variableDefault)
      bad(`${at}.default_value`, `must be at most ${TEMPLATE_LIMITS.variableDefault} characters`);
    if (variable.description.length > TEMPLATE_LIMITS.description)
      bad(`${at}.description`, `must be at most ${TEMPLATE_LIMITS.description} characters`);
    for (const [name, text] of Object.entries(variable)) {
      if (typeof text === 'string' && text.includes('\u0000'))
        bad(`${at}.${name === 'defaultValue' ? 'default_value' : name}`, NO_NUL);
    }
  });

  const keys = Object.keys(f.locales);
  if (keys.length === 0) bad(`${prefix}.locales`, 'must have at least one locale');
  if (keys.length > TEMPLATE_LIMITS.locales)
    bad(`${prefix}.locales`, `must have at most ${TEMPLATE_LIMITS.locales} entries`);
  const defaultKey = keys.find((k) => k.toLowerCase() === f.defaultLocale.toLowerCase());
  if (f.defaultLocale === '') bad(`${prefix}.default_locale`, 'is required');
  else if (defaultKey === undefined)
    bad(`${prefix}.default_locale`, `must be one of the locales (${keys.join(', ') || 'none'})`);
  const defaultChannels = new Set<Channel>();
  if (defaultKey !== undefined) {
    for (const c of CHANNEL_PARTS)
      if (f.locales[defaultKey]?.[c.key]) defaultChannels.add(c.channel);
  }

  const locales: CompiledTemplate['locales'] = new Map();
  for (const key of keys) {
    const at = `${prefix}.locales[${JSON.stringify(key)}]`;
    const lower = key.toLowerCase();
    if (!isLocale(key)) {
      bad(at, 'key must be a BCP 47 locale, e.g. en or fr-CA');
      continue;
    }
    if (locales.has(lower)) {
      bad(at, `the locale ${key} is given more than once (locales are case-insensitive)`);
      continue;
    }
    const parts = f.locales[key] ?? {};
    const channels = new Map<Channel, CompiledParts>();
    for (const c of CHANNEL_PARTS) {
      const p = parts[c.key];
      if (p === undefined) continue;
      const partAt = `${at}.${c.field}`;
      if (defaultKey !== undefined && key !== defaultKey && !defaultChannels.has(c.channel)) {
        bad(partAt, `the default locale ${defaultKey} has no ${c.field} parts`);
        continue;
      }
      channels.set(c.channel, compileParts(c.channel, p, partAt, declared, bad));
    }
    if (channels.size === 0 && !v.some((x) => x.field.startsWith(`${at}.`)))
      bad(at, 'must have the parts of at least one channel');
    locales.set(lower, { locale: key, channels });
  }
  if (v.length > 0) throw new ValidationError(v);
  return { fields: f, locales };
}

const NO_NUL = 'must not contain NUL (U+0000) characters';

function compileParts(
  channel: Channel,
  p: Partial<EmailParts & SmsParts & MessageParts & WebhookParts>,
  at: string,
  declared: ReadonlySet<string>,
  bad: Bad,
): CompiledParts {
  const compiled: CompiledParts = { text: [], data: [] };
  const parse = (text: string, field: string): Segment[] => {
    if (text.includes('\u0000')) {
      bad(field, NO_NUL);
      return [];
    }
    const parsed = parseTemplate(text);
    if (!parsed.ok) {
      bad(field, parsed.error);
      return [];
    }
    for (const name of referencedVariables(parsed.segments)) {
      if (!declared.has(name))
        bad(field, `uses {{${name}}}, which is not a declared variable; declare it in variables`);
    }
    return parsed.segments;
  };
  for (const part of TEXT_PARTS[channel]) {
    const text = (p as Record<string, string | undefined>)[part.name] ?? '';
    const field = `${at}.${part.name}`;
    if (text.length > part.limit) bad(field, `must be at most ${part.limit} characters`);
    else if (part.content === 'subject' && /[\r\n]/.test(text))
      bad(field, 'must not contain line breaks');
    else if (text !== '') compiled.text.push({ part, segments: parse(text, field) });
  }
  if (HAS_DATA[channel]) {
    const data = p.data ?? {};
    checkMap(data, `${at}.data`, LIMITS.dataEntries, LIMITS.dataKey, LIMITS.dataValue, bad);
    for (const [k, text] of Object.entries(data)) {
      compiled.data.push([k, parse(text, `${at}.data[${JSON.stringify(k)}]`)]);
    }
  }
  // A Send's content rules, over the unrendered parts, named as the template names them.
  const asContent: Content = {};
  const nameOf = (c: keyof Content) =>
    TEXT_PARTS[channel].find((part) => part.content === c)?.name ?? c;
  for (const part of TEXT_PARTS[channel]) {
    asContent[part.content] = (p as Record<string, string | undefined>)[part.name] ?? '';
  }
  if (HAS_DATA[channel]) asContent.data = p.data ?? {};
  for (const m of missingParts(asContent, channel)) {
    bad(
      `${at}.${nameOf(m.field)}`,
      m.anyOf.length === 1 ? 'is required' : `${m.anyOf.map(nameOf).join(' or ')} is required`,
    );
  }
  return compiled;
}

export function isLocale(locale: string): boolean {
  if (locale.length === 0 || locale.length > TEMPLATE_LIMITS.locale) return false;
  try {
    return Intl.getCanonicalLocales(locale).length === 1;
  } catch {
    return false;
  }
}

/**
 * The locales to try for a recipient's locale, most specific first: `fr-CA` gives fr-ca, fr;
 * `zh-Hant-TW` gives zh-hant-tw, zh-hant, zh. Lower case; the caller adds the default last.
 */
export function localeCandidates(locale: string | null): string[] {
  if (locale === null || locale === '') return [];
  let canonical = locale;
  try {
    canonical = Intl.getCanonicalLocales(locale)[0] ?? locale;
  } catch {
    // Not a valid locale: still try it as written (it simply will not match).
  }
  const subtags = canonical.toLowerCase().split('-');
  const out: string[] = [];
  for (let n = subtags.length; n > 0; n--) out.push(subtags.slice(0, n).join('-'));
  return out;
}

/** The locale variant a channel renders from: the first candidate covering the channel. */
export function pickLocale(
  t: CompiledTemplate,
  channel: Channel,
  recipientLocale: string | null,
): { locale: string; parts: CompiledParts } | null {
  const candidates = [...localeCandidates(recipientLocale), t.fields.defaultLocale.toLowerCase()];
  for (const c of candidates) {
    const variant = t.locales.get(c);
    const parts = variant?.channels.get(channel);
    if (variant && parts) return { locale: variant.locale, parts };
  }
  return null;
}

/** The channels a version supports: those of its default locale, in Channel order. */
export function supportedChannels(t: CompiledTemplate): Channel[] {
  const variant = t.locales.get(t.fields.defaultLocale.toLowerCase());
  return CHANNELS.filter((c) => variant?.channels.has(c));
}

/**
 * The value of every declared variable: the given one, else the default of an optional one. The
 * missing required ones are returned as violations naming `template.variables.<name>`.
 */
export function resolveVariables(
  t: CompiledTemplate,
  given: Readonly<Record<string, string>>,
  what: string,
): { values: Record<string, string>; missing: FieldViolation[] } {
  // No prototype: a variable may be named `__proto__` (or `constructor`), and must be kept.
  const values = Object.create(null) as Record<string, string>;
  const missing: FieldViolation[] = [];
  for (const variable of t.fields.variables) {
    if (Object.hasOwn(given, variable.name)) values[variable.name] = given[variable.name] ?? '';
    else if (variable.required)
      missing.push({
        field: `template.variables.${variable.name}`,
        description: `is required by ${what}`,
      });
    else values[variable.name] = variable.defaultValue;
  }
  return { values, missing };
}

/** Renders one channel's parts to the content a notification carries. */
export function renderParts(
  parts: CompiledParts,
  values: Readonly<Record<string, string>>,
): Content {
  const content: Content = {};
  for (const { part, segments } of parts.text) {
    const text = renderSegments(segments, values, { escapeHtml: part.html === true });
    if (text !== '') content[part.content] = text;
  }
  if (parts.data.length > 0) {
    content.data = Object.fromEntries(
      parts.data.map(([k, segments]) => [
        k,
        renderSegments(segments, values, { escapeHtml: false }),
      ]),
    );
  }
  return content;
}

/** Renders a Send's template; the port notifications.ts uses. */
export interface TemplateRenderer {
  /**
   * The content of `channel` for a recipient with `locale`, and the version it pins. NotFound for
   * an unknown template or version, FailedPrecondition for an archived one, ValidationError for a
   * missing variable, a channel the template lacks, or rendered content breaking a Send rule.
   */
  renderForSend(
    tenantId: string,
    ref: TemplateRef,
    channel: Channel,
    locale: string | null,
  ): Promise<{ content: Content; pinned: PinnedTemplate }>;
}

export interface TemplatesOptions {
  /** Templates whose compiled versions are kept in memory (versions are immutable). */
  cacheTemplates?: number;
  /** Versions kept per template (the most recently used). */
  cacheVersionsPerTemplate?: number;
}

export interface PreviewInput {
  id: string;
  version: number;
  draft: TemplateFields | null;
  variables: Record<string, string>;
  locale: string;
  /** '' for every supported channel. */
  channel: Channel | '';
}

export interface PreviewResult {
  version: number;
  contents: { channel: Channel; locale: string; content: Content }[];
  violations: FieldViolation[];
}

export function createTemplates(store: TemplateStore, options: TemplatesOptions = {}) {
  const maxTemplates = options.cacheTemplates ?? 1_000;
  const maxVersions = options.cacheVersionsPerTemplate ?? 4;
  // tenant + id -> version -> compiled; both levels in least-recently-used order.
  const cache = new Map<string, Map<number, CompiledTemplate>>();

  function cached(key: string): Map<number, CompiledTemplate> | undefined {
    const versions = cache.get(key);
    if (versions !== undefined) {
      cache.delete(key);
      cache.set(key, versions);
    }
    return versions;
  }

  function remember(key: string, version: number, compiled: CompiledTemplate): void {
    const versions = cached(key) ?? new Map<number, CompiledTemplate>();
    versions.delete(version);
    versions.set(version, compiled);
    if (versions.size > maxVersions) versions.delete(versions.keys().next().value as number);
    cache.set(key, versions);
    if (cache.size > maxTemplates) cache.delete(cache.keys().next().value as string);
  }

  /** A stored version, parsed (it passed the same checks when it was stored). */
  const compileStored = (fields: TemplateFields) => compileTemplate(fields);

  async function getVersion(tenantId: string, id: string, version: number) {
    requireId(id, 'id');
    if (version < 0)
      throw new ValidationError([
        { field: 'version', description: 'must be at least 0 (0: the latest)' },
      ]);
    const t = await store.get(tenantId, id, version === 0 ? null : version);
    if (t === null) {
      throw new NotFoundError(
        version === 0
          ? `template ${JSON.stringify(id)}`
          : `template ${JSON.stringify(id)} version ${version}`,
      );
    }
    return t;
  }

  const renderer: TemplateRenderer = {
    async renderForSend(tenantId, ref, channel, locale) {
      const key = `${tenantId}\u0000${ref.id}`;
      // A copy: a concurrent Send may evict a version from the cache while this one reads.
      const have = new Map(cached(key));
      const lookup = await store.forSend(tenantId, ref.id, ref.version === 0 ? null : ref.version, [
        ...have.keys(),
      ]);
      if (lookup === null) throw new NotFoundError(`template ${JSON.stringify(ref.id)}`);
      if (!lookup.versionExists)
        throw new NotFoundError(`template ${JSON.stringify(ref.id)} version ${ref.version}`);
      if (lookup.archived)
        throw new FailedPreconditionError(
          `template ${JSON.stringify(ref.id)} is archived and can no longer be sent`,
        );
      let compiled = have.get(lookup.version);
      if (compiled === undefined) {
        if (lookup.fields === null) {
          throw new Error(
            `template ${ref.id} version ${lookup.version} was neither cached nor read`,
          );
        }
        compiled = compileStored(lookup.fields);
      }
      remember(key, lookup.version, compiled);
      const what = `template ${JSON.stringify(ref.id)} version ${lookup.version}`;
      const picked = pickLocale(compiled, channel, locale);
      if (picked === null) {
        const supported = supportedChannels(compiled);
        throw new ValidationError([
          {
            field: 'template.id',
            description: `${what} has no ${channel} parts (it supports ${supported.join(', ')})`,
          },
        ]);
      }
      const { values, missing } = resolveVariables(compiled, ref.variables, what);
      if (missing.length > 0) throw new ValidationError(missing);
      const content = renderParts(picked.parts, values);
      const broken = renderedContentViolations(content, channel);
      if (broken.length > 0) {
        throw new ValidationError(
          broken.map((b) => ({
            field: 'template',
            description: `${what} (${picked.locale}) rendered ${b.field} that ${b.description}`,
          })),
        );
      }
      return {
        content,
        pinned: { id: ref.id, version: lookup.version, locale: picked.locale },
      };
    },
  };

  return {
    ...renderer,

    async create(tenantId: string, fields: TemplateFields): Promise<TemplateVersion> {
      compileTemplate(fields);
      const created = await store.create(tenantId, fields);
      if (created === null) {
        // Archived ids stay taken, and UpdateTemplate refuses them: say which case this is.
        const existing = await store.get(tenantId, fields.id, null);
        throw new AlreadyExistsError(
          existing?.archivedAt
            ? `template ${JSON.stringify(fields.id)} exists and is archived; its id cannot be used again`
            : `template ${JSON.stringify(fields.id)} already exists; UpdateTemplate adds a version`,
        );
      }
      return created;
    },

    async update(
      tenantId: string,
      fields: TemplateFields,
      expectedVersion: number,
    ): Promise<TemplateVersion> {
      if (expectedVersion < 0)
        throw new ValidationError([
          { field: 'expected_version', description: 'must be at least 0 (0: no check)' },
        ]);
      compileTemplate(fields);
      const r = await store.addVersion(
        tenantId,
        fields,
        expectedVersion === 0 ? null : expectedVersion,
      );
      if (r.ok) return r.template;
      const name = JSON.stringify(fields.id);
      switch (r.reason) {
        case 'not_found':
          throw new NotFoundError(`template ${name}`);
        case 'archived':
          throw new FailedPreconditionError(`template ${name} is archived and cannot be updated`);
        case 'conflict':
          throw new FailedPreconditionError(
            `template ${name} is at version ${r.latestVersion}, not expected_version ${expectedVersion}`,
          );
      }
    },

    get: getVersion,

    /**
     * Makes `fields` the latest version: creates the template, or adds a version unless the
     * latest already has exactly these fields (so pushing the same file twice adds nothing).
     */
    async push(
      tenantId: string,
      fields: TemplateFields,
    ): Promise<{ template: TemplateVersion; outcome: 'created' | 'updated' | 'unchanged' }> {
      compileTemplate(fields);
      let latest = await store.get(tenantId, fields.id, null);
      if (latest === null) {
        const created = await store.create(tenantId, fields);
        if (created !== null) return { template: created, outcome: 'created' };
        // A concurrent push created it first: compare with what that one stored.
        latest = await store.get(tenantId, fields.id, null);
      }
      if (
        latest !== null &&
        latest.archivedAt === null &&
        canonicalJson(fieldsOf(latest)) === canonicalJson(fields)
      ) {
        return { template: latest, outcome: 'unchanged' };
      }
      const r = await store.addVersion(tenantId, fields, latest?.version ?? null);
      if (r.ok) return { template: r.template, outcome: 'updated' };
      throw r.reason === 'archived'
        ? new FailedPreconditionError(
            `template ${JSON.stringify(fields.id)} is archived and cannot be updated`,
          )
        : new FailedPreconditionError(
            `template ${JSON.stringify(fields.id)} changed while pushing (now version ${r.latestVersion}); push again`,
          );
    },

    async list(
      tenantId: string,
      input: { pageSize: number; pageToken: string; includeArchived: boolean },
    ) {
      const v: FieldViolation[] = [];
      if (input.pageSize < 0 || input.pageSize > TEMPLATE_PAGE_SIZE.max)
        v.push({ field: 'page_size', description: `must be 0 to ${TEMPLATE_PAGE_SIZE.max}` });
      const after = input.pageToken === '' ? null : decodePageToken('templates', input.pageToken);
      if (after === undefined)
        v.push({ field: 'page_token', description: 'is not a token this API returned' });
      if (v.length > 0) throw new ValidationError(v);
      const limit = input.pageSize === 0 ? TEMPLATE_PAGE_SIZE.default : input.pageSize;
      const rows = await store.list(tenantId, {
        afterId: after?.id ?? null,
        limit: limit + 1,
        includeArchived: input.includeArchived,
      });
      const { page, nextPageToken } = pageOf('templates', rows, limit, (t) => ({ id: t.id }));
      return { templates: page, nextPageToken };
    },

    async archive(tenantId: string, id: string): Promise<TemplateVersion> {
      requireId(id, 'id');
      const t = await store.archive(tenantId, id);
      if (t === null) throw new NotFoundError(`template ${JSON.stringify(id)}`);
      return t;
    },

    async preview(tenantId: string, input: PreviewInput): Promise<PreviewResult> {
      const v: FieldViolation[] = [];
      const bad: Bad = (field, description) => v.push({ field, description });
      if ((input.id === '') === (input.draft === null))
        bad('id', 'exactly one of id and draft is required');
      if (input.locale !== '' && !isLocale(input.locale))
        bad('locale', 'must be a BCP 47 locale, e.g. fr-CA');
      if (input.version < 0) bad('version', 'must be at least 0 (0: the latest)');
      else if (input.version !== 0 && input.draft !== null)
        bad('version', 'applies to a stored template (id) only, not to a draft');
      checkTemplateVariables(input.variables, 'variables', bad);
      if (v.length > 0) throw new ValidationError(v);

      let compiled: CompiledTemplate;
      let version = 0;
      let stored: TemplateVersion | null = null;
      if (input.draft !== null) {
        compiled = compileTemplate(input.draft, 'draft', { requireId: false });
      } else {
        stored = await getVersion(tenantId, input.id, input.version);
        compiled = compileStored(stored);
        version = stored.version;
      }
      const what =
        input.draft === null
          ? `template ${JSON.stringify(input.id)} version ${version}`
          : 'the draft';
      const { values, missing } = resolveVariables(compiled, input.variables, what);
      const violations: FieldViolation[] = [...missing];
      if (input.draft === null && stored?.archivedAt != null) {
        violations.push({
          field: 'template.id',
          description: `template ${JSON.stringify(input.id)} is archived and can no longer be sent`,
        });
      }
      const channels = input.channel === '' ? supportedChannels(compiled) : [input.channel];
      const contents: PreviewResult['contents'] = [];
      for (const channel of channels) {
        const picked = pickLocale(compiled, channel, input.locale || null);
        if (picked === null) {
          violations.push({ field: 'template.id', description: `${what} has no ${channel} parts` });
          continue;
        }
        const content = renderParts(picked.parts, values);
        contents.push({ channel, locale: picked.locale, content });
        for (const b of renderedContentViolations(content, channel)) {
          violations.push({
            field: 'template',
            description: `${channel} (${picked.locale}) rendered ${b.field} that ${b.description}`,
          });
        }
      }
      return { version, contents, violations };
    },
  };
}

export type Templates = ReturnType<typeof createTemplates>;

const fieldsOf = (t: TemplateVersion): TemplateFields => ({
  id: t.id,
  description: t.description,
  defaultLocale: t.defaultLocale,
  variables: t.variables,
  locales: t.locales,
});

function requireId(id: string, field: string): void {
  const v: FieldViolation[] = [];
  validateTemplateId(id, (f, d) => v.push({ field: f, description: d }), field);
  if (v.length > 0) throw new ValidationError(v);
}
