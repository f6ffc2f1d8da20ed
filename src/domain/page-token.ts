/**
 * Page tokens for keyset-paged listings: an opaque encoding of the last row's (time, id) pair.
 * Each listing has its own kind, so a token from one listing is rejected by another rather than
 * silently paging it from a position that means something else.
 */
import { isUuid } from './ids.js';

/** A keyset position: rows strictly older than this (time, id) pair come next. */
export interface PagePosition {
  at: Date;
  id: string;
}

/**
 * The listings that issue tokens. `notifications` tokens carry no kind tag (the format predates
 * tags, and tokens already handed out must keep working).
 */
export type PageTokenKind = 'notifications' | 'dead-letters' | 'inbox';

const TAGS: Record<PageTokenKind, string | null> = {
  notifications: null,
  'dead-letters': 'dl',
  inbox: 'ib',
};

export function encodePageToken(kind: PageTokenKind, position: PagePosition): string {
  const tag = TAGS[kind];
  const body = [position.at.toISOString(), position.id];
  return Buffer.from(JSON.stringify(tag === null ? body : [tag, ...body])).toString('base64url');
}

/**
 * One page of a listing that read `limit + 1` rows: the first `limit` rows, and the token of the
 * page after them (empty on the last page). `positionOf` gives a row's keyset position.
 */
export function pageOf<T>(
  kind: PageTokenKind,
  rows: readonly T[],
  limit: number,
  positionOf: (row: T) => PagePosition | null,
): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const position = rows.length > limit && last !== undefined ? positionOf(last) : null;
  return { page, nextPageToken: position === null ? '' : encodePageToken(kind, position) };
}

/** The position in a token; undefined when the token is not one this kind of listing issued. */
export function decodePageToken(kind: PageTokenKind, token: string): PagePosition | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (!Array.isArray(parsed)) return undefined;
    const tag = TAGS[kind];
    const fields = parsed as unknown[];
    if (tag !== null && fields.shift() !== tag) return undefined;
    if (fields.length !== 2) return undefined;
    const [at, id] = fields;
    if (typeof at !== 'string' || typeof id !== 'string' || !isUuid(id)) return undefined;
    const date = new Date(at);
    return Number.isNaN(date.getTime()) ? undefined : { at: date, id };
  } catch {
    return undefined;
  }
}
