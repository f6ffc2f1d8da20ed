/**
 * Page tokens: each listing reads back the position it wrote, and refuses another listing's
 * tokens and anything it did not issue.
 */
import { describe, expect, it } from 'vitest';
import { decodePageToken, encodePageToken, pageOf } from '../../src/domain/page-token.js';

const ID = '0193a3c0-0000-7000-8000-000000000001';
const at = new Date('2026-11-21T10:00:00.000Z');

describe('page tokens', () => {
  it('reads back the position of each kind', () => {
    for (const kind of ['notifications', 'dead-letters', 'inbox'] as const) {
      expect(decodePageToken(kind, encodePageToken(kind, { at, id: ID }))).toEqual({ at, id: ID });
    }
    expect(
      decodePageToken('templates', encodePageToken('templates', { id: 'order-shipped' })),
    ).toEqual({ id: 'order-shipped' });
  });

  it('reads template tokens handed out before templates shared this module', () => {
    const earlier = Buffer.from(JSON.stringify(['tpl', 'order-shipped'])).toString('base64url');
    expect(decodePageToken('templates', earlier)).toEqual({ id: 'order-shipped' });
  });

  it('refuses another listing’s token, a bad id and garbage', () => {
    const inbox = encodePageToken('inbox', { at, id: ID });
    const templates = encodePageToken('templates', { id: 'order-shipped' });
    expect(decodePageToken('templates', inbox)).toBeUndefined();
    expect(decodePageToken('inbox', templates)).toBeUndefined();
    expect(decodePageToken('notifications', templates)).toBeUndefined();
    const badId = Buffer.from(JSON.stringify(['tpl', 'Not An Id'])).toString('base64url');
    expect(decodePageToken('templates', badId)).toBeUndefined();
    expect(decodePageToken('templates', 'not-a-token')).toBeUndefined();
  });

  it('gives a next token only when a row beyond the page was read', () => {
    const rows = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
    const full = pageOf('templates', rows, 2, (r) => ({ id: r.id }));
    expect(full.page).toEqual(rows.slice(0, 2));
    expect(decodePageToken('templates', full.nextPageToken)).toEqual({ id: 'b' });
    expect(pageOf('templates', rows, 3, (r) => ({ id: r.id })).nextPageToken).toBe('');
  });
});
