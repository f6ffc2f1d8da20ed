/**
 * The template syntax: text with `{{name}}` tags and nothing else. Logic-less on purpose — no
 * sections, helpers, partials or raw insertion — so a template can only place the caller's values,
 * never run code or smuggle unescaped HTML. Parsing happens once, when a version is stored;
 * rendering a parsed template cannot fail.
 */

/** A parsed template: literal text and variable references, in order. */
export type Segment = string | { variable: string };

export type ParseResult = { ok: true; segments: Segment[] } | { ok: false; error: string };

/** Segments of letters, digits and '_' (not starting with a digit), joined by '.'. */
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
export const MAX_VARIABLE_NAME = 64;

/** True for a name a variable may have (and a tag may reference). */
export function isVariableName(name: string): boolean {
  return name.length <= MAX_VARIABLE_NAME && VARIABLE_NAME.test(name);
}

/** Parses `text`; the error names the offending tag's line and column. */
export function parseTemplate(text: string): ParseResult {
  const segments: Segment[] = [];
  let at = 0;
  while (at < text.length) {
    const open = text.indexOf('{{', at);
    if (open === -1) {
      segments.push(text.slice(at));
      break;
    }
    if (open > at) segments.push(text.slice(at, open));
    const close = text.indexOf('}}', open + 2);
    const where = position(text, open);
    if (close === -1) return { ok: false, error: `unterminated tag "{{" at ${where}` };
    const inner = text.slice(open + 2, close);
    if (inner.startsWith('{')) {
      return {
        ok: false,
        error: `raw insertion "{{{" at ${where} is not supported; use {{name}} (values are escaped in html)`,
      };
    }
    if (inner.includes('{{')) {
      return { ok: false, error: `unterminated tag "{{" at ${where}` };
    }
    const name = inner.trim();
    if (name === '') return { ok: false, error: `empty tag at ${where}` };
    if (/^[#^/>!&=]/.test(name)) {
      return {
        ok: false,
        error: `tag "{{${name}}}" at ${where}: only {{variable}} tags are allowed (no sections, partials, comments or helpers)`,
      };
    }
    if (!isVariableName(name)) {
      return {
        ok: false,
        error: `tag "{{${name.slice(0, 80)}}}" at ${where}: a variable name is letters, digits and '_' (not starting with a digit), dotted segments allowed, at most ${MAX_VARIABLE_NAME} characters`,
      };
    }
    segments.push({ variable: name });
    at = close + 2;
  }
  return { ok: true, segments };
}

/** The distinct variables a parsed template references, in order of first use. */
export function referencedVariables(segments: readonly Segment[]): string[] {
  const names = new Set<string>();
  for (const s of segments) if (typeof s !== 'string') names.add(s.variable);
  return [...names];
}

/**
 * Renders parsed segments. Every referenced variable must be in `values` (the caller resolves
 * defaults and reports missing ones first); one that is not renders as empty.
 */
export function renderSegments(
  segments: readonly Segment[],
  values: Readonly<Record<string, string>>,
  options: { escapeHtml: boolean },
): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'string') out += s;
    else {
      const value = Object.hasOwn(values, s.variable) ? (values[s.variable] ?? '') : '';
      out += options.escapeHtml ? escapeHtml(value) : value;
    }
  }
  return out;
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
  '=': '&#61;',
};

/**
 * Escapes a value for HTML text and quoted attribute values. '`' and '=' too, which matter only
 * in unquoted attributes. It cannot make a value a safe URL: `href="{{url}}"` still accepts
 * `javascript:` — put URLs in the template, and variables in their query strings.
 */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`=]/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** "line L, column C" (1-based) of an offset. */
function position(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line += 1;
    lineStart = i + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}
