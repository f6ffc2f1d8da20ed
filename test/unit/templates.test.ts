import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, NotFoundError } from '../../src/domain/errors.js';
import {
  createTemplates,
  type TemplateFields,
  type TemplateSendLookup,
  type TemplateStore,
} from '../../src/domain/templates.js';

/** An in-memory TemplateStore with only what renderForSend uses, recording its lookups. */
function memoryStore() {
  const versions = new Map<string, TemplateFields[]>();
  const archived = new Set<string>();
  const lookups: { id: string; version: number | null; cached: number[] }[] = [];
  const key = (tenantId: string, id: string) => `${tenantId}/${id}`;
  const unused = () => Promise.reject(new Error('not used by renderForSend'));
  const store: TemplateStore = {
    create: unused,
    addVersion: unused,
    get: unused,
    list: unused,
    archive: unused,
    forSend(tenantId, id, version, cached) {
      lookups.push({ id, version, cached: [...cached] });
      const all = versions.get(key(tenantId, id));
      if (all === undefined) return Promise.resolve(null);
      const v = version ?? all.length;
      const fields = all[v - 1];
      const lookup: TemplateSendLookup = {
        version: v,
        archived: archived.has(key(tenantId, id)),
        versionExists: fields !== undefined,
        fields: fields === undefined || cached.includes(v) ? null : fields,
      };
      return Promise.resolve(lookup);
    },
  };
  return {
    store,
    lookups,
    put(tenantId: string, fields: TemplateFields) {
      const all = versions.get(key(tenantId, fields.id)) ?? [];
      all.push(fields);
      versions.set(key(tenantId, fields.id), all);
    },
    archive: (tenantId: string, id: string) => archived.add(key(tenantId, id)),
  };
}

const greeting = (text: string): TemplateFields => ({
  id: 'greeting',
  description: '',
  defaultLocale: 'en',
  variables: [{ name: 'name', required: true, defaultValue: '', description: '' }],
  locales: { en: { sms: { text } } },
});

const ref = (version = 0) => ({ id: 'greeting', version, variables: { name: 'Ada' } });

describe('renderForSend', () => {
  it('reads a cached version without its body, and the latest afresh after an update', async () => {
    const m = memoryStore();
    const templates = createTemplates(m.store);
    m.put('acme', greeting('Hi {{name}}'));
    const first = await templates.renderForSend('acme', ref(), 'sms', null);
    const again = await templates.renderForSend('acme', ref(), 'sms', null);
    expect(first.content).toEqual({ body: 'Hi Ada' });
    expect(again).toEqual(first);
    expect(m.lookups.map((l) => l.cached)).toEqual([[], [1]]);

    m.put('acme', greeting('Hello {{name}}'));
    const latest = await templates.renderForSend('acme', ref(), 'sms', null);
    expect(latest).toEqual({
      content: { body: 'Hello Ada' },
      pinned: { id: 'greeting', version: 2, locale: 'en' },
    });
    expect((await templates.renderForSend('acme', ref(1), 'sms', null)).content.body).toBe(
      'Hi Ada',
    );
  });

  it('refuses a cached template once it is archived', async () => {
    const m = memoryStore();
    const templates = createTemplates(m.store);
    m.put('acme', greeting('Hi {{name}}'));
    await templates.renderForSend('acme', ref(), 'sms', null);
    m.archive('acme', 'greeting');
    await expect(templates.renderForSend('acme', ref(), 'sms', null)).rejects.toBeInstanceOf(
      FailedPreconditionError,
    );
  });

  it('keeps tenants apart in the cache, and answers NotFound for another tenant’s id', async () => {
    const m = memoryStore();
    const templates = createTemplates(m.store);
    m.put('acme', greeting('Acme says hi to {{name}}'));
    m.put('globex', greeting('Globex greets {{name}}'));
    expect((await templates.renderForSend('acme', ref(), 'sms', null)).content.body).toBe(
      'Acme says hi to Ada',
    );
    expect((await templates.renderForSend('globex', ref(), 'sms', null)).content.body).toBe(
      'Globex greets Ada',
    );
    await expect(templates.renderForSend('initech', ref(), 'sms', null)).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('holds at most the configured number of templates', async () => {
    const m = memoryStore();
    const templates = createTemplates(m.store, { cacheTemplates: 1 });
    m.put('acme', greeting('A {{name}}'));
    m.put('globex', greeting('G {{name}}'));
    await templates.renderForSend('acme', ref(), 'sms', null);
    await templates.renderForSend('globex', ref(), 'sms', null);
    await templates.renderForSend('acme', ref(), 'sms', null);
    expect(m.lookups.map((l) => l.cached)).toEqual([[], [], []]);
  });
});
