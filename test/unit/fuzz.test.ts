/**
 * Property tests of template compiling and rendering and of Send validation (RELIABILITY.md R16):
 * over many generated inputs, bad input is only ever a ValidationError (never an internal error),
 * the same input always gives the same answer, and html rendering lets no `<` or `>` of a value
 * through. Inputs come from a small seeded PRNG: a failure names its case's seed, and
 * FUZZ_SEED=<seed> FUZZ_CASES=1 replays exactly that case.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/domain/canonical-json.js';
import { ValidationError } from '../../src/domain/errors.js';
import { CHANNELS, type Channel, type Content } from '../../src/domain/notification.js';
import {
  compileTemplate,
  pickLocale,
  renderParts,
  resolveVariables,
  supportedChannels,
  type TemplateFields,
  type TemplateParts,
} from '../../src/domain/templates.js';
import { validateSend, type SendInput } from '../../src/domain/validation.js';

const BASE_SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const chance = (p: number) => next() < p;
  return { int, pick, chance };
}
type Rng = ReturnType<typeof prng>;

/** Runs `check` on `CASES` generated inputs; a failure names the case's seed and its input. */
function forEachCase<T>(generate: (r: Rng) => T, check: (input: T) => void): void {
  for (let i = 0; i < CASES; i++) {
    const seed = BASE_SEED + i;
    let input: T | undefined;
    try {
      input = generate(prng(seed));
      check(input);
    } catch (err) {
      const shown = JSON.stringify(input, (_k, v: unknown) =>
        typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v,
      );
      throw new Error(
        `case seed ${seed} (replay: FUZZ_SEED=${seed} FUZZ_CASES=1): ${String(err)}\ninput: ${shown}`,
        { cause: err },
      );
    }
  }
}

/** The answer to compare across runs: the value, or the violations of a ValidationError. */
function outcome<T>(run: () => T): { ok: T } | { violations: unknown } {
  try {
    return { ok: run() };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    expect(err.violations.length).toBeGreaterThan(0);
    return { violations: err.violations };
  }
}

// Text is mostly what a template may hold (markup, quotes, Unicode, tags of declared variables),
// with now and then a fragment that breaks a rule: tag syntax, NUL, an undeclared variable.
const CLEAN = [
  'a',
  'Z',
  '_',
  '.',
  '1',
  ' ',
  '\n',
  '<',
  '>',
  '&',
  '"',
  "'",
  '`',
  '=',
  'é',
  '😀',
  '\u0085',
  '<p>',
  '&amp;',
  '}',
];
const HOSTILE = [
  '{',
  '{{',
  '}}',
  '{{{',
  '}}}',
  '\u0000',
  '\r',
  '{{1x}}',
  '{{#if x}}',
  '{{> partial}}',
  '{{ }}',
  '{{undeclared}}',
  '<script>',
];
const GOOD_NAMES = ['name', 'x', 'a.b', 'order_id', '__proto__', 'constructor', 'toString'];
const BAD_NAMES = ['1x', '', 'a..b', 'n'.repeat(65)];
/** Keys of maps: variable names (good and bad), and some no map may have. */
const KEYS = [...GOOD_NAMES, ...BAD_NAMES, 'hasOwnProperty', 'k', 'k'.repeat(70)];

function text(r: Rng, names: readonly string[], maxFragments = 8): string {
  if (r.chance(0.005)) return 'x'.repeat(r.pick([256, 1_601, 5_000]));
  let s = '';
  for (let n = r.int(maxFragments + 1); n > 0; n--) {
    if (r.chance(0.02)) s += r.pick(HOSTILE);
    else if (names.length > 0 && r.chance(0.3)) {
      const name = r.pick(names);
      s += r.chance(0.8) ? `{{${name}}}` : `{{ ${name} }}`;
    } else s += r.pick(CLEAN);
  }
  return s;
}

function stringMap(r: Rng, keys: readonly string[], names: readonly string[] = []) {
  // JSON.parse keeps `__proto__` an own key, as protobuf-es and the gateway build maps.
  const entries = Array.from({ length: r.int(4) }, () => [r.pick(keys), text(r, names, 4)]);
  return JSON.parse(JSON.stringify(Object.fromEntries(entries))) as Record<string, string>;
}

function parts(r: Rng, names: readonly string[], channels: readonly Channel[]): TemplateParts {
  const t = () => text(r, names);
  const data = () => (r.chance(0.5) ? {} : stringMap(r, r.chance(0.95) ? ['k', 'v'] : KEYS, names));
  const p: TemplateParts = {};
  for (const c of channels) {
    if (c === 'email') p.email = { subject: t(), text: t(), html: t() };
    if (c === 'sms') p.sms = { text: t() };
    if (c === 'push') p.push = { title: t(), body: t(), data: data() };
    if (c === 'in_app') p.inApp = { title: t(), body: t(), data: data() };
    if (c === 'webhook') p.webhook = { body: t(), data: data() };
  }
  return p;
}

function templateFields(r: Rng): TemplateFields {
  const names = GOOD_NAMES.filter(() => r.chance(0.4));
  const variables = names.map((name) => {
    const required = r.chance(0.4);
    return { name, required, defaultValue: required ? '' : text(r, [], 3), description: '' };
  });
  if (r.chance(0.05)) {
    variables.push({
      name: r.pick([...BAD_NAMES, ...GOOD_NAMES]),
      required: r.chance(0.5),
      defaultValue: text(r, [], 2),
      description: '',
    });
  }
  const channels = CHANNELS.filter(() => r.chance(0.4));
  const locales: Record<string, TemplateParts> = { en: parts(r, names, channels) };
  for (const locale of ['fr', 'fr-CA', 'zh-Hant-TW', 'EN', 'not a locale', '']) {
    if (!r.chance(locale === 'fr' || locale === 'fr-CA' ? 0.4 : 0.02)) continue;
    const some = r.chance(0.95) ? channels.filter(() => r.chance(0.6)) : [...CHANNELS];
    locales[locale] = parts(r, names, some);
  }
  return {
    id: r.chance(0.98) ? 'order-shipped' : r.pick(['', 'Bad Id', 'x'.repeat(65)]),
    description: r.chance(0.9) ? '' : text(r, []),
    defaultLocale: r.chance(0.95) ? 'en' : r.pick(['EN', 'fr', 'de', '']),
    variables,
    locales,
  };
}

const countOf = (s: string, c: string) => s.split(c).length - 1;

describe('template compiling and rendering', () => {
  it(`never fails but with a ValidationError, and answers the same twice (${CASES} cases)`, () => {
    let rendered = 0;
    forEachCase(
      (r) => ({
        fields: templateFields(r),
        variables: stringMap(r, KEYS),
        locale: r.pick([null, 'en', 'fr-CA', 'de-DE', 'zh-Hant-TW', 'not a locale']),
      }),
      ({ fields, variables, locale }) => {
        const first = outcome(() => compileTemplate(fields));
        const second = outcome(() => compileTemplate(fields));
        if (!('ok' in first) || !('ok' in second)) {
          expect(second).toEqual(first);
          return;
        }
        const t = first.ok;
        const { values, missing } = resolveVariables(t, variables, 'the template');
        expect(resolveVariables(second.ok, variables, 'the template')).toEqual({ values, missing });
        for (const channel of supportedChannels(t)) {
          const picked = pickLocale(t, channel, locale);
          expect(picked, channel).not.toBeNull();
          if (picked === null) continue;
          const content: Content = renderParts(picked.parts, values);
          expect(renderParts(picked.parts, values)).toEqual(content);
          rendered += 1;
          const html = picked.parts.text.find((p) => p.part.html === true);
          if (html === undefined) continue;
          // Every `<` and `>` in the output is the template's own: none came from a value.
          const literal = html.segments.filter((s): s is string => typeof s === 'string').join('');
          for (const c of ['<', '>', '"']) {
            expect(countOf(content.html ?? '', c), c).toBe(countOf(literal, c));
          }
        }
      },
    );
    // The generator reaches rendering often enough for the properties to mean something.
    expect(rendered).toBeGreaterThan(CASES === 1 ? -1 : CASES / 20);
  });
});

const NOW = new Date('2026-11-21T12:00:00Z');

/** Each field valid most of the time, so that both accepted and refused Sends are common. */
function sendInput(r: Rng): SendInput {
  const either = <T>(good: readonly T[], bad: readonly T[]): T =>
    r.chance(0.93) ? r.pick(good) : r.pick(bad);
  const channel = either<string>(CHANNELS, ['', 'EMAIL', 'fax', '__proto__']);
  const content = (): Content => {
    const c: Content = {};
    if (channel === 'email' || r.chance(0.1)) c.subject = text(r, [], 4);
    if (channel !== 'email' || r.chance(0.7)) c.body = text(r, [], 6);
    if (channel === 'email' ? r.chance(0.3) : r.chance(0.03)) c.html = text(r, []);
    if (channel === 'push' || channel === 'in_app' ? r.chance(0.6) : r.chance(0.05))
      c.title = text(r, [], 4);
    if (r.chance(0.2)) c.data = stringMap(r, r.chance(0.9) ? ['k', 'v'] : KEYS);
    return c;
  };
  const ADDRESSES: Record<string, readonly string[]> = {
    email: ['a@example.com', 'é@exämple.de'],
    sms: ['+15550001234'],
    push: ['device-token'],
    webhook: ['https://example.com/hook', 'http://127.0.0.1:8080/x?y=1'],
  };
  const byTemplate = r.chance(0.3);
  return {
    userId: either(['u-1', 'é😀'], ['', 'u\u0000', 'u\n1', 'u'.repeat(129)]),
    channel,
    content: byTemplate ? (r.chance(0.9) ? null : content()) : r.chance(0.95) ? content() : null,
    to: either(
      ['', ...(Object.hasOwn(ADDRESSES, channel) ? (ADDRESSES[channel] ?? []) : [])],
      [
        'a@b',
        'a @example.com',
        '+0123',
        'tok en',
        'javascript:alert(1)',
        'http://',
        'x\u0000',
        `${'a'.repeat(250)}@example.com`,
      ],
    ),
    idempotencyKey: either(['', 'key-1'], ['ké', 'k'.repeat(129), 'k\n']),
    priority: either(['', 'low', 'normal', 'high', 'critical'], ['urgent', 'NORMAL']),
    category: either(['', 'orders', 'a.b_c-1'], ['Orders', '-x', 'c'.repeat(65)]),
    sendAt: either(
      [null, new Date(NOW.getTime() + 60_000), new Date(NOW.getTime() - 60_000)],
      [new Date(NOW.getTime() + 400 * 86_400_000), new Date(Number.NaN)],
    ),
    metadata: r.chance(0.9) ? stringMap(r, ['k', 'trace']) : stringMap(r, KEYS),
    correlationId: either(['', 'c-1'], ['c\u0001', 'c'.repeat(129)]),
    template: byTemplate
      ? {
          id: either(['order-shipped'], ['', 'Bad Id']),
          version: either([0, 1, 2_147_483_647], [-1]),
          variables: stringMap(r, r.chance(0.9) ? GOOD_NAMES : KEYS),
        }
      : r.chance(0.5)
        ? null
        : undefined,
  };
}

describe('validateSend', () => {
  it(`never fails but with a ValidationError, and answers the same twice (${CASES} cases)`, () => {
    let accepted = 0;
    forEachCase(sendInput, (input) => {
      const first = outcome(() => validateSend(input, NOW));
      const second = outcome(() => validateSend(input, NOW));
      expect(second).toEqual(first);
      if ('ok' in first && 'ok' in second) {
        accepted += 1;
        // What idempotency hashes is the same too.
        expect(canonicalJson(second.ok)).toBe(canonicalJson(first.ok));
      }
    });
    expect(accepted).toBeGreaterThan(CASES === 1 ? -1 : CASES / 20);
  });
});
