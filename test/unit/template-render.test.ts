import { describe, expect, it } from 'vitest';
import { ValidationError, type FieldViolation } from '../../src/domain/errors.js';
import {
  escapeHtml,
  parseTemplate,
  referencedVariables,
  renderSegments,
  type Segment,
} from '../../src/domain/template-render.js';
import {
  compileTemplate,
  localeCandidates,
  pickLocale,
  renderParts,
  resolveVariables,
  type TemplateFields,
} from '../../src/domain/templates.js';

function parsed(text: string): Segment[] {
  const r = parseTemplate(text);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(text)} to parse: ${r.error}`);
  return r.segments;
}

function parseError(text: string): string {
  const r = parseTemplate(text);
  if (r.ok) throw new Error(`expected ${JSON.stringify(text)} not to parse`);
  return r.error;
}

const render = (text: string, values: Record<string, string>, escape = false) =>
  renderSegments(parsed(text), values, { escapeHtml: escape });

describe('parseTemplate', () => {
  it('splits text and tags when the template has variables', () => {
    expect(parsed('Hi {{name}}, order {{ order.id }} shipped')).toEqual([
      'Hi ',
      { variable: 'name' },
      ', order ',
      { variable: 'order.id' },
      ' shipped',
    ]);
  });

  it('keeps plain text whole when there is no tag, and a lone "}}" as text', () => {
    expect(parsed('no tags } here }}')).toEqual(['no tags } here }}']);
    expect(parsed('')).toEqual([]);
  });

  it('names the line and column of an unterminated tag', () => {
    expect(parseError('line one\nab {{name')).toBe('unterminated tag "{{" at line 2, column 4');
    expect(parseError('{{a {{b}}')).toBe('unterminated tag "{{" at line 1, column 1');
  });

  it.each([
    ['{{#items}}x{{/items}}', 'only {{variable}} tags are allowed'],
    ['{{> header}}', 'only {{variable}} tags are allowed'],
    ['{{! a comment }}', 'only {{variable}} tags are allowed'],
    ['{{&raw}}', 'only {{variable}} tags are allowed'],
    ['{{{raw}}}', 'raw insertion "{{{" at line 1, column 1 is not supported'],
    ['{{ }}', 'empty tag at line 1, column 1'],
    ['{{user name}}', 'a variable name is letters, digits'],
    ['{{1st}}', 'a variable name is letters, digits'],
    ['{{a..b}}', 'a variable name is letters, digits'],
    ['{{upper "x"}}', 'a variable name is letters, digits'],
    [`{{${'a'.repeat(65)}}}`, 'at most 64 characters'],
  ])('rejects %s: no logic, helpers, partials or raw insertion', (text, message) => {
    expect(parseError(text)).toContain(message);
  });

  it('lists each referenced variable once, in order of first use', () => {
    expect(referencedVariables(parsed('{{b}} {{a}} {{b}} {{c.d}}'))).toEqual(['b', 'a', 'c.d']);
  });
});

describe('renderSegments', () => {
  it('substitutes values as they are outside html', () => {
    expect(render('Hi {{name}} <{{email}}>', { name: 'Ada & co', email: 'a@x' })).toBe(
      'Hi Ada & co <a@x>',
    );
  });

  it('escapes every inserted value in html, never the template text', () => {
    expect(
      render('<p title="{{t}}">{{body}}</p>', { t: '" onload="x', body: "<script>&'`=" }, true),
    ).toBe('<p title="&quot; onload&#61;&quot;x">&lt;script&gt;&amp;&#39;&#96;&#61;</p>');
  });

  it('inserts a value once, without parsing tags inside it', () => {
    expect(render('{{a}}', { a: '{{b}}', b: 'no' })).toBe('{{b}}');
  });

  it('renders an unknown name as empty rather than reaching into the prototype', () => {
    expect(render('[{{toString}}][{{constructor}}]', {})).toBe('[][]');
  });

  it('renders many variables, each in its place', () => {
    const names = Array.from({ length: 200 }, (_, i) => `v${i}`);
    const text = names.map((n) => `{{${n}}}`).join(',');
    const values = Object.fromEntries(names.map((n, i) => [n, String(i * 2)]));
    expect(render(text, values)).toBe(names.map((_, i) => String(i * 2)).join(','));
  });
});

describe('escapeHtml', () => {
  it('leaves text without special characters unchanged', () => {
    expect(escapeHtml('Grüße, Ada 42')).toBe('Grüße, Ada 42');
  });
});

const base = (overrides: Partial<TemplateFields> = {}): TemplateFields => ({
  id: 'order-shipped',
  description: '',
  defaultLocale: 'en',
  variables: [
    { name: 'name', required: true, defaultValue: '', description: '' },
    { name: 'carrier', required: false, defaultValue: 'the post', description: '' },
  ],
  locales: {
    en: {
      email: { subject: 'Shipped, {{name}}', text: 'Via {{carrier}}', html: '<b>{{name}}</b>' },
      sms: { text: 'Shipped via {{carrier}}' },
    },
    fr: { email: { subject: 'Expédié, {{name}}', text: 'Par {{carrier}}', html: '' } },
  },
  ...overrides,
});

function violations(fields: TemplateFields): FieldViolation[] {
  try {
    compileTemplate(fields);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return [...(err as ValidationError).violations];
  }
  throw new Error('expected compileTemplate to throw');
}

describe('compileTemplate', () => {
  it('names the exact part of a syntax error or an undeclared variable', () => {
    const v = violations(
      base({
        locales: {
          en: { email: { subject: 'Hi {{name}}', text: 'x', html: '<p>{{name</p>' } },
          fr: { email: { subject: 'Salut {{nom}}', text: 'x', html: '' } },
        },
      }),
    );
    expect(v).toEqual([
      {
        field: 'template.locales["en"].email.html',
        description: 'unterminated tag "{{" at line 1, column 4',
      },
      {
        field: 'template.locales["fr"].email.subject',
        description: 'uses {{nom}}, which is not a declared variable; declare it in variables',
      },
    ]);
  });

  it('names every rule a version breaks when its fields are bad', () => {
    const v = violations({
      id: 'Order Shipped',
      description: '',
      defaultLocale: 'de',
      variables: [
        { name: 'x', required: true, defaultValue: 'd', description: '' },
        { name: 'x', required: false, defaultValue: '', description: '' },
      ],
      locales: {
        en: { sms: { text: '' } },
        'not a locale': { sms: { text: 'x' } },
      },
    });
    expect(v.map((x) => x.field)).toEqual([
      'template.id',
      'template.variables[0].default_value',
      'template.variables[1].name',
      'template.default_locale',
      'template.locales["en"].sms.text',
      'template.locales["not a locale"]',
    ]);
  });

  it('refuses a channel that the default locale does not have', () => {
    const v = violations(
      base({
        locales: { en: { sms: { text: 'x' } }, fr: { push: { title: 't', body: '', data: {} } } },
      }),
    );
    expect(v).toEqual([
      {
        field: 'template.locales["fr"].push',
        description: 'the default locale en has no push parts',
      },
    ]);
  });
});

describe('locale fallback', () => {
  it('tries the region, then the language', () => {
    expect(localeCandidates('fr-CA')).toEqual(['fr-ca', 'fr']);
    expect(localeCandidates('zh-Hant-TW')).toEqual(['zh-hant-tw', 'zh-hant', 'zh']);
    expect(localeCandidates(null)).toEqual([]);
  });

  it('picks fr for fr-CA, the default for de, and the default for a channel fr lacks', () => {
    const t = compileTemplate(base());
    expect(pickLocale(t, 'email', 'fr-CA')?.locale).toBe('fr');
    expect(pickLocale(t, 'email', 'de-DE')?.locale).toBe('en');
    expect(pickLocale(t, 'sms', 'fr')?.locale).toBe('en');
    expect(pickLocale(t, 'push', 'en')).toBeNull();
  });
});

describe('resolveVariables and renderParts', () => {
  it('uses defaults for optional variables and names the missing required ones', () => {
    const t = compileTemplate(base());
    expect(resolveVariables(t, {}, 'v1').missing).toEqual([
      { field: 'template.variables.name', description: 'is required by v1' },
    ]);
    const { values } = resolveVariables(t, { name: '<Ada>', extra: 'ignored' }, 'v1');
    const picked = pickLocale(t, 'email', 'en');
    expect(picked && renderParts(picked.parts, values)).toEqual({
      subject: 'Shipped, <Ada>',
      body: 'Via the post',
      html: '<b>&lt;Ada&gt;</b>',
    });
  });
});

describe('variables named like Object.prototype members', () => {
  it('keeps __proto__ and constructor values, given or defaulted', () => {
    const t = compileTemplate(
      base({
        variables: [
          { name: '__proto__', required: true, defaultValue: '', description: '' },
          { name: 'constructor', required: false, defaultValue: 'C', description: '' },
        ],
        locales: { en: { sms: { text: '{{__proto__}}/{{constructor}}' } } },
      }),
    );
    // As protobuf-es and JSON.parse build a map: `__proto__` an own key.
    const given = JSON.parse('{"__proto__":"<P>"}') as Record<string, string>;
    const { values, missing } = resolveVariables(t, given, 'v1');
    expect(missing).toEqual([]);
    const picked = pickLocale(t, 'sms', null);
    expect(picked && renderParts(picked.parts, values)).toEqual({ body: '<P>/C' });
    expect(resolveVariables(t, {}, 'v1').missing).toEqual([
      { field: 'template.variables.__proto__', description: 'is required by v1' },
    ]);
  });
});

describe('required parts', () => {
  it('asks for what a Send of the channel needs, named as the template names its parts', () => {
    const v = violations(
      base({
        variables: [],
        locales: {
          en: {
            email: { subject: ' ', text: '', html: '' },
            sms: { text: '' },
            push: { title: '', body: '', data: {} },
            webhook: { body: '', data: {} },
          },
        },
      }),
    );
    const at = 'template.locales["en"]';
    expect(v).toEqual([
      { field: `${at}.email.subject`, description: 'is required' },
      { field: `${at}.email.text`, description: 'text or html is required' },
      { field: `${at}.sms.text`, description: 'is required' },
      { field: `${at}.push.body`, description: 'title or body is required' },
      { field: `${at}.webhook.body`, description: 'body or data is required' },
    ]);
  });
});
