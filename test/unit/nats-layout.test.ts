import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LAYOUT,
  consumerName,
  escapeToken,
  jobSubject,
  jobSubjects,
  statusFilter,
  statusSubject,
  streamName,
  unescapeToken,
} from '../../src/infra/nats/layout.js';

const TRICKY = [
  'plain',
  'with.dots.in.it',
  '*',
  '>',
  'a b\tc\n',
  '%',
  '%41',
  'ünïcödé',
  '通知',
  '🔔 bell',
  '',
  '-_-',
  '..',
  'x'.repeat(300),
];

describe('escapeToken', () => {
  it.each(TRICKY)('round-trips when the id is %j', (id) => {
    expect(unescapeToken(escapeToken(id))).toBe(id);
  });

  it('produces only [A-Za-z0-9_%-] when the id has subject metacharacters or unicode', () => {
    for (const id of TRICKY) expect(escapeToken(id)).toMatch(/^[A-Za-z0-9_%-]+$/);
  });

  it('keeps safe characters and upper-cases the hex when encoding', () => {
    expect(escapeToken('Ab9_-')).toBe('Ab9_-');
    expect(escapeToken('a.b*c>d e%f')).toBe('a%2Eb%2Ac%3Ed%20e%25f');
    expect(escapeToken('é')).toBe('%C3%A9');
  });

  it('returns % when the id is empty', () => {
    expect(escapeToken('')).toBe('%');
    expect(unescapeToken('%')).toBe('');
  });

  it('gives distinct tokens when ids differ only in escaping-relevant characters', () => {
    const ids = ['a.b', 'a%2Eb', 'a_b', 'a-b', 'a b', ''];
    expect(new Set(ids.map(escapeToken)).size).toBe(ids.length);
  });
});

describe('unescapeToken', () => {
  it.each(['a.b', 'a%2', 'a%zz', 'a%2e', '', '%%', '%FF'])(
    'throws when the token is %j',
    (token) => {
      expect(() => unescapeToken(token)).toThrow(/subject token/);
    },
  );
});

describe('subject builders', () => {
  const layout = DEFAULT_LAYOUT;

  it('names the job subject, stream and consumer when given a channel and lane', () => {
    expect(jobSubject(layout, 'email', 'high')).toBe('herald.jobs.email.high');
    expect(jobSubjects(layout, 'in_app')).toBe('herald.jobs.in_app.*');
    expect(streamName(layout, 'in_app')).toBe('HERALD_IN_APP');
    expect(consumerName('in_app', 'critical')).toBe('in_app_critical');
  });

  it('uses the layout prefixes when the layout is not the default', () => {
    const custom = { subjectPrefix: 'tabc', streamPrefix: 'TABC' };
    expect(jobSubject(custom, 'sms', 'low')).toBe('tabc.jobs.sms.low');
    expect(streamName(custom, 'sms')).toBe('TABC_SMS');
    expect(statusSubject(custom, 't', 'u', 'n')).toBe('tabc.events.t.u.n');
  });

  it('escapes every id when building a status subject', () => {
    expect(statusSubject(layout, 'ten.ant', 'us er', '*')).toBe(
      'herald.events.ten%2Eant.us%20er.%2A',
    );
    expect(statusSubject(layout, 'tenant', '', 'n1')).toBe('herald.events.tenant.%.n1');
  });

  it('uses * for the unknown parts when building a status filter', () => {
    expect(statusFilter(layout, 't.1')).toBe('herald.events.t%2E1.*.*');
    expect(statusFilter(layout, 't1', { userId: 'u>1' })).toBe('herald.events.t1.u%3E1.*');
    expect(statusFilter(layout, 't1', { notificationId: 'n1' })).toBe('herald.events.t1.*.n1');
    expect(statusFilter(layout, 't1', { userId: 'u1', notificationId: 'n1' })).toBe(
      statusSubject(layout, 't1', 'u1', 'n1'),
    );
  });
});
