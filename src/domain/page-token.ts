/**
 * Page tokens for keyset-paged listings: an opaque encoding of the last row's position, a
 * (time, id) pair for listings by time and an id alone for listings by id. Each listing has its
 * own kind, so a token from one listing is rejected by another rather than silently paging it
 * from a position that means something else.
 */
import { isUuid } from './ids.js';
import { isTemplateId } from './validation.js';

/** A keyset position by time: rows strictly older than this (time, id) pair come next. */
export interface PagePosition {
  at: Date;
  id: string;
}

/** A keyset position by id: rows with a greater id come next. */
export interface IdPosition {
  id: string;
}

/** The position each listing's tokens carry. */
export interface PagePositions {
  /** At createdAt. */
  notifications: PagePosition;
  /** At deadLetteredAt. */
  'dead-letters': PagePosition;
  /** At deliveredAt: the inbox lists by arrival. */
  inbox: PagePosition;
  templates: IdPosition;
}

/** The listings that issue tokens. */
export type PageTokenKind = keyof PagePositions;

/** How one kind's positions become a token's fields and back. */
interface TokenFormat<P> {
  /** Leads the fields; null for `notifications`, whose format predates tags (tokens already
   * handed out must keep working). */
  tag: string | null;
  fields(position: P): string[];
  /** The position in the fields after the tag; undefined when they are not one. */
  parse(fields: unknown[]): P | undefined;
}

const byTime = (tag: string | null): TokenFormat<PagePosition> => ({
  tag,
  fields: (p) => [p.at.toISOString(), p.id],
  parse(fields) {
    if (fields.length !== 2) return undefined;
    const [at, id] = fields;
    if (typeof at !== 'string' || typeof id !== 'string' || !isUuid(id)) return undefined;
    const date = new Date(at);
    return Number.isNaN(date.getTime()) ? undefined : { at: date, id };
  },
});

const byId = (tag: string, isId: (id: string) => boolean): TokenFormat<IdPosition> => ({
  tag,
  fields: (p) => [p.id],
  parse(fields) {
    if (fields.length !== 1) return undefined;
    const [id] = fields;
    return typeof id === 'string' && isId(id) ? { id } : undefined;
  },
});

const FORMATS: { [K in PageTokenKind]: TokenFormat<PagePositions[K]> } = {
  notifications: byTime(null),
  'dead-letters': byTime('dl'),
  inbox: byTime('ib'),
  templates: byId('tpl', isTemplateId),
};

export function encodePageToken<K extends PageTokenKind>(
  kind: K,
  position: PagePositions[K],
): string {
  const format: TokenFormat<PagePositions[K]> = FORMATS[kind];
  const body = format.fields(position);
  const fields = format.tag === null ? body : [format.tag, ...body];
  return Buffer.from(JSON.stringify(fields)).toString('base64url');
}

/**
 * One page of a listing that read `limit + 1` rows: the first `limit` rows, and the token of the
 * page after them (empty on the last page). `positionOf` gives a row's keyset position.
 */
export function pageOf<T, K extends PageTokenKind>(
  kind: K,
  rows: readonly T[],
  limit: number,
  positionOf: (row: T) => PagePositions[K] | null,
): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const position = rows.length > limit && last !== undefined ? positionOf(last) : null;
  return { page, nextPageToken: position === null ? '' : encodePageToken(kind, position) };
}

/** The position in a token; undefined when the token is not one this kind of listing issued. */
export function decodePageToken<K extends PageTokenKind>(
  kind: K,
  token: string,
): PagePositions[K] | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (!Array.isArray(parsed)) return undefined;
    const format: TokenFormat<PagePositions[K]> = FORMATS[kind];
    const fields = parsed as unknown[];
    if (format.tag !== null && fields.shift() !== format.tag) return undefined;
    return format.parse(fields);
  } catch {
    return undefined;
  }
}
