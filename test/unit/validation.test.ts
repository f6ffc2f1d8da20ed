import { describe, expect, it } from 'vitest';
import { ValidationError, type FieldViolation } from '../../src/domain/errors.js';
import { LIMITS, validateSend, type SendInput } from '../../src/domain/validation.js';
import { sendInput } from '../support/fixtures.js';

const NOW = new Date('2030-06-01T12:00:00.000Z');
const DAY = 24 * 3600 * 1000;

const input = sendInput;

/** The error validateSend throws for `overrides`; fails the test if it throws none or another. */
function validationError(overrides: Partial<SendInput>): ValidationError {
  try {
    validateSend(input(overrides), NOW);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected validateSend to throw');
}

/** The violations validateSend throws for `overrides`; fails the test if it does not throw. */
function violations(overrides: Partial<SendInput>): FieldViolation[] {
  return [...validationError(overrides).violations];
}

function fields(overrides: Partial<SendInput>): string[] {
  return violations(overrides).map((v) => v.field);
}

function entries(n: number, value = 'v'): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));
}

const x = (n: number) => 'x'.repeat(n);

describe('validateSend', () => {
  describe('happy path', () => {
    it.each<[string, Partial<SendInput>]>([
      ['email with subject and body', { channel: 'email', content: { subject: 's', body: 'b' } }],
      [
        'email with subject and html only',
        { channel: 'email', content: { subject: 's', html: '<p>b</p>' } },
      ],
      ['email with a direct address', { channel: 'email', to: 'ada@example.com' }],
      ['sms with a body', { channel: 'sms', content: { body: 'code 123456' } }],
      [
        'sms with an E.164 number',
        { channel: 'sms', content: { body: 'b' }, to: '+4915112345678' },
      ],
      ['push with a title', { channel: 'push', content: { title: 'Ping' } }],
      [
        'push with a body and a device token',
        { channel: 'push', content: { body: 'b' }, to: 'tok:ABC_123-xyz' },
      ],
      ['in_app with a title', { channel: 'in_app', content: { title: 'Hello' } }],
      [
        'in_app with a body and data',
        { channel: 'in_app', content: { body: 'b', data: { href: '/orders/1' } } },
      ],
      ['webhook with a body', { channel: 'webhook', content: { body: '{"a":1}' } }],
      [
        'webhook with data only and a URL',
        {
          channel: 'webhook',
          content: { data: { a: '1' } },
          to: 'https://hooks.example.com/x?y=1',
        },
      ],
      [
        'webhook to a plain http URL',
        { channel: 'webhook', content: { body: 'b' }, to: 'http://127.0.0.1:9000/hook' },
      ],
    ])('returns a command when the request is %s', (_, overrides) => {
      const cmd = validateSend(input(overrides), NOW);

      expect(cmd.channel).toBe(overrides.channel);
      expect(cmd.userId).toBe('user-42');
      expect(cmd.to).toBe(overrides.to ?? null);
    });

    it('applies the defaults and turns empty optional strings into null when only required fields are set', () => {
      expect(validateSend(input(), NOW)).toEqual({
        userId: 'user-42',
        channel: 'email',
        content: { subject: 'Your order shipped', body: 'It arrives on Tuesday.' },
        to: null,
        idempotencyKey: null,
        priority: 'normal',
        category: null,
        sendAt: null,
        metadata: {},
        correlationId: null,
      });
    });

    it('keeps every optional field when all of them are set', () => {
      const optional = {
        to: 'ada@example.com',
        idempotencyKey: 'order-1234-shipped',
        priority: 'critical',
        category: 'orders.shipping_v2-eu',
        sendAt: new Date(NOW.getTime() + DAY),
        metadata: { order: '1234' },
        correlationId: 'trace-abc',
      };

      const cmd = validateSend(input(optional), NOW);

      expect(cmd).toMatchObject(optional);
    });

    it.each(['low', 'normal', 'high', 'critical'])(
      'accepts priority %s when it is defined',
      (priority) => {
        expect(validateSend(input({ priority }), NOW).priority).toBe(priority);
      },
    );

    it('drops empty content parts when normalizing', () => {
      const cmd = validateSend(
        input({
          channel: 'in_app',
          content: { subject: '', body: '', html: '', title: 'T', data: {} },
        }),
        NOW,
      );

      expect(cmd.content).toEqual({ title: 'T' });
    });

    it('accepts every field at exactly its limit', () => {
      const cmd = validateSend(
        input({
          userId: x(LIMITS.userId),
          content: {
            subject: x(LIMITS.subject),
            body: x(LIMITS.body),
            html: x(LIMITS.html),
            title: x(LIMITS.title),
            data: Object.fromEntries(
              Array.from({ length: LIMITS.dataEntries }, (_, i) => [
                `${i}`.padStart(LIMITS.dataKey, 'k'),
                x(LIMITS.dataValue),
              ]),
            ),
          },
          to: `${x(LIMITS.email - '@example.com'.length)}@example.com`,
          idempotencyKey: '~'.repeat(LIMITS.idempotencyKey),
          category: x(LIMITS.category),
          metadata: Object.fromEntries(
            Array.from({ length: LIMITS.metadataEntries }, (_, i) => [
              `${i}`.padStart(LIMITS.metadataKey, 'm'),
              x(LIMITS.metadataValue),
            ]),
          ),
          correlationId: x(LIMITS.correlationId),
          sendAt: new Date(NOW.getTime() + LIMITS.sendAtAheadMs),
        }),
        NOW,
      );

      expect(cmd.userId).toHaveLength(LIMITS.userId);
      expect(cmd.sendAt?.getTime()).toBe(NOW.getTime() + LIMITS.sendAtAheadMs);
    });

    it('accepts an sms body of exactly 1,600 characters', () => {
      expect(() =>
        validateSend(input({ channel: 'sms', content: { body: x(LIMITS.smsBody) } }), NOW),
      ).not.toThrow();
    });

    it('treats send_at as now (null) when it is in the past or exactly now', () => {
      expect(validateSend(input({ sendAt: new Date(NOW.getTime() - DAY) }), NOW).sendAt).toBeNull();
      expect(validateSend(input({ sendAt: new Date(0) }), NOW).sendAt).toBeNull();
      expect(validateSend(input({ sendAt: new Date(NOW) }), NOW).sendAt).toBeNull();
    });

    it('keeps send_at when it is in the future', () => {
      const sendAt = new Date(NOW.getTime() + 1);

      expect(validateSend(input({ sendAt }), NOW).sendAt).toEqual(sendAt);
    });
  });

  describe('user_id', () => {
    it('is required when empty', () => {
      expect(violations({ userId: '' })).toEqual([
        { field: 'user_id', description: 'is required' },
      ]);
    });

    it('is rejected when longer than 128 characters', () => {
      expect(fields({ userId: x(129) })).toEqual(['user_id']);
    });

    it.each(['a\u0000b', 'tab\there', 'line\nbreak', 'del\u007f', 'c1\u0085'])(
      'is rejected when it contains the control character in %j',
      (userId) => {
        expect(violations({ userId })).toEqual([
          { field: 'user_id', description: 'must not contain control characters' },
        ]);
      },
    );
  });

  describe('channel', () => {
    it('is required when empty (CHANNEL_UNSPECIFIED)', () => {
      const [v] = violations({ channel: '' });

      expect(v?.field).toBe('channel');
      expect(v?.description).toMatch(/^is required/);
    });

    it.each(['unknown value 99', 'EMAIL', 'fax'])(
      'is rejected, naming the value, when it is %j',
      (channel) => {
        const [v] = violations({ channel });

        expect(v?.field).toBe('channel');
        expect(v?.description).toContain(`(got ${channel})`);
      },
    );

    it('skips the channel-specific content and address rules when the channel is unknown', () => {
      expect(fields({ channel: 'fax', content: {}, to: 'anything' })).toEqual(['channel']);
    });
  });

  describe('priority', () => {
    it.each(['unknown value 7', 'urgent', 'NORMAL'])('is rejected when it is %j', (priority) => {
      expect(fields({ priority })).toEqual(['priority']);
    });
  });

  describe('content', () => {
    it('is required when missing', () => {
      expect(violations({ content: null })).toEqual([
        { field: 'content', description: 'content or template is required' },
      ]);
    });

    it('needs a subject for email when it has none', () => {
      expect(fields({ content: { body: 'b' } })).toEqual(['content.subject']);
    });

    it('needs a subject for email when it is only whitespace', () => {
      expect(fields({ content: { subject: '  \t', body: 'b' } })).toEqual(['content.subject']);
    });

    it('needs body or html for email when both are empty', () => {
      expect(fields({ content: { subject: 's', body: ' ', html: '' } })).toEqual(['content.body']);
    });

    it('needs a body for sms when it has only a title', () => {
      expect(violations({ channel: 'sms', content: { title: 't' } })).toEqual([
        { field: 'content.body', description: 'is required for sms' },
      ]);
    });

    it('needs a body for sms when the body is empty', () => {
      expect(fields({ channel: 'sms', content: { body: '' } })).toEqual(['content.body']);
    });

    it.each(['push', 'in_app'])('needs a title or a body for %s when both are empty', (channel) => {
      expect(fields({ channel, content: { data: { a: '1' } } })).toEqual(['content.body']);
    });

    it('needs a body or data for webhook when both are empty', () => {
      expect(fields({ channel: 'webhook', content: { title: 't' } })).toEqual(['content.body']);
    });

    it('rejects a subject longer than 255 characters', () => {
      expect(fields({ content: { subject: x(256), body: 'b' } })).toEqual(['content.subject']);
    });

    it.each(['a\nb', 'a\rb', 'a\r\nb'])(
      'rejects a subject with the line break in %j',
      (subject) => {
        expect(violations({ content: { subject, body: 'b' } })).toEqual([
          { field: 'content.subject', description: 'must not contain line breaks' },
        ]);
      },
    );

    it('rejects a body longer than 65,536 characters', () => {
      expect(fields({ content: { subject: 's', body: x(LIMITS.body + 1) } })).toEqual([
        'content.body',
      ]);
    });

    it('rejects an sms body longer than 1,600 characters', () => {
      expect(violations({ channel: 'sms', content: { body: x(LIMITS.smsBody + 1) } })).toEqual([
        { field: 'content.body', description: 'must be at most 1600 characters' },
      ]);
    });

    it('rejects html longer than 262,144 characters', () => {
      expect(fields({ content: { subject: 's', html: x(LIMITS.html + 1) } })).toEqual([
        'content.html',
      ]);
    });

    it.each(['sms', 'push', 'in_app', 'webhook'])(
      'rejects html when the channel is %s',
      (channel) => {
        expect(fields({ channel, content: { body: 'b', html: '<p>b</p>' } })).toEqual([
          'content.html',
        ]);
      },
    );

    it('rejects a title longer than 255 characters', () => {
      expect(fields({ channel: 'push', content: { title: x(256) } })).toEqual(['content.title']);
    });

    it('rejects data with more than 64 entries', () => {
      expect(fields({ channel: 'webhook', content: { data: entries(65) } })).toEqual([
        'content.data',
      ]);
    });

    it('rejects a data key that is empty or longer than 64 characters', () => {
      expect(fields({ channel: 'webhook', content: { data: { '': 'v', [x(65)]: 'v' } } })).toEqual([
        'content.data[""]',
        `content.data[${JSON.stringify(x(64))}]`,
      ]);
    });

    it('rejects a data value longer than 4,096 characters', () => {
      expect(fields({ channel: 'webhook', content: { data: { big: x(4_097) } } })).toEqual([
        'content.data["big"]',
      ]);
    });
  });

  describe('to', () => {
    it.each([
      'ada',
      'ada@',
      '@example.com',
      'ada@example',
      'a da@example.com',
      'ada@@example.com',
      'ada@exa mple.com',
    ])('is rejected for email when it is %j', (to) => {
      expect(fields({ to })).toEqual(['to']);
    });

    it('is rejected for email when longer than 254 characters', () => {
      expect(fields({ to: `${x(255 - '@example.com'.length)}@example.com` })).toEqual(['to']);
    });

    it.each([
      '004915112345678',
      '+0123456789',
      '+12345',
      '+1234567890123456',
      '+49 151 1234567',
      '+49-151-1234567',
      'phone',
    ])('is rejected for sms when it is %j', (to) => {
      expect(violations({ channel: 'sms', content: { body: 'b' }, to })).toEqual([
        {
          field: 'to',
          description: 'must be an E.164 phone number (+ and 7 to 15 digits) for sms',
        },
      ]);
    });

    it.each(['+1234567', '+123456789012345'])(
      'is accepted for sms at the length bounds (%s)',
      (to) => {
        expect(validateSend(input({ channel: 'sms', content: { body: 'b' }, to }), NOW).to).toBe(
          to,
        );
      },
    );

    it.each(['tok en', 'tok\nen', x(LIMITS.pushToken + 1)])(
      'is rejected for push when it is a bad token',
      (to) => {
        expect(fields({ channel: 'push', content: { title: 't' }, to })).toEqual(['to']);
      },
    );

    it.each([
      'example.com/hook',
      'ftp://example.com/hook',
      'mailto:a@example.com',
      'http://',
      `https://example.com/${x(2_048)}`,
      'https://user:secret@example.com/hook',
      'https://token@example.com/hook',
    ])('is rejected for webhook when it is %j', (to) => {
      expect(fields({ channel: 'webhook', content: { body: 'b' }, to })).toEqual(['to']);
    });

    describe("with the deployment's webhook URL rule", () => {
      const seen: string[] = [];
      const rules = {
        webhookUrl: (url: URL) => {
          seen.push(url.href);
          return url.hostname === '10.0.0.5' ? 'must not be a private address' : null;
        },
      };
      const send = (overrides: Partial<SendInput>) => () =>
        validateSend(input({ content: { body: 'b' }, ...overrides }), NOW, rules);

      it('is rejected for webhook, naming to and the rule, when the rule refuses the URL', () => {
        expect(send({ channel: 'webhook', to: 'http://10.0.0.5/admin' })).toThrow(
          expect.objectContaining({
            violations: [{ field: 'to', description: 'must not be a private address' }],
          }),
        );
      });

      it('is accepted for webhook when the rule lets the URL through', () => {
        expect(send({ channel: 'webhook', to: 'https://hooks.example.com/h' })().to).toBe(
          'https://hooks.example.com/h',
        );
      });

      it('is applied to valid webhook URLs only', () => {
        seen.length = 0;
        expect(send({ channel: 'webhook', to: 'ftp://10.0.0.5/' })).toThrow(ValidationError);
        expect(
          send({ channel: 'email', content: { subject: 's', body: 'b' }, to: 'a@10.0.0.5' }),
        ).not.toThrow();
        expect(send({ channel: 'webhook' })).not.toThrow();

        expect(seen).toEqual([]);
      });
    });

    it('must be empty for in_app', () => {
      expect(violations({ channel: 'in_app', content: { title: 't' }, to: 'user-42' })).toEqual([
        { field: 'to', description: 'must be empty for in_app' },
      ]);
    });
  });

  describe('idempotency_key', () => {
    it('is rejected when longer than 128 characters', () => {
      expect(fields({ idempotencyKey: x(129) })).toEqual(['idempotency_key']);
    });

    it.each(['caf\u00e9', 'a\tb', 'a\u0000', '\u{1f514}'])(
      'is rejected when it is not printable ASCII (%j)',
      (key) => {
        expect(violations({ idempotencyKey: key })).toEqual([
          { field: 'idempotency_key', description: 'must be printable ASCII' },
        ]);
      },
    );
  });

  describe('category', () => {
    it('is rejected when longer than 64 characters', () => {
      expect(fields({ category: x(65) })).toEqual(['category']);
    });

    it.each([
      'Orders',
      'orders shipping',
      '.orders',
      '-orders',
      '_orders',
      'orders/shipping',
      'ordérs',
    ])('is rejected when it is %j', (category) => {
      expect(fields({ category })).toEqual(['category']);
    });

    it.each(['orders', '0day', 'a.b_c-d', 'x'])('is accepted when it is %j', (category) => {
      expect(validateSend(input({ category }), NOW).category).toBe(category);
    });
  });

  describe('send_at', () => {
    it('is rejected when it could not be represented (an invalid Date)', () => {
      expect(violations({ sendAt: new Date(Number.NaN) })).toEqual([
        { field: 'send_at', description: 'must be a valid timestamp' },
      ]);
    });

    it('is rejected when more than 366 days ahead', () => {
      expect(violations({ sendAt: new Date(NOW.getTime() + LIMITS.sendAtAheadMs + 1) })).toEqual([
        { field: 'send_at', description: 'must be at most 366 days in the future' },
      ]);
    });
  });

  describe('metadata', () => {
    it('is rejected when it has more than 32 entries', () => {
      expect(violations({ metadata: entries(33) })).toEqual([
        { field: 'metadata', description: 'must have at most 32 entries' },
      ]);
    });

    it('is rejected when a key is empty or longer than 64 characters', () => {
      expect(fields({ metadata: { '': 'v', [x(65)]: 'v' } })).toEqual([
        'metadata[""]',
        `metadata[${JSON.stringify(x(64))}]`,
      ]);
    });

    it('is rejected when a value is longer than 512 characters', () => {
      expect(fields({ metadata: { order: x(513) } })).toEqual(['metadata["order"]']);
    });
  });

  describe('correlation_id', () => {
    it('is rejected when longer than 128 characters', () => {
      expect(fields({ correlationId: x(129) })).toEqual(['correlation_id']);
    });

    it('is rejected when it contains control characters', () => {
      expect(fields({ correlationId: 'a\u0001b' })).toEqual(['correlation_id']);
    });
  });

  describe('NUL characters (PostgreSQL cannot store U+0000)', () => {
    const NO_NUL = 'must not contain NUL (U+0000) characters';

    it.each<[string, Partial<SendInput>, string]>([
      ['content.subject', { content: { subject: 'a\u0000', body: 'b' } }, 'content.subject'],
      ['content.body', { content: { subject: 's', body: 'a\u0000b' } }, 'content.body'],
      ['content.html', { content: { subject: 's', html: '<p>\u0000</p>' } }, 'content.html'],
      ['content.title', { channel: 'push', content: { title: '\u0000' } }, 'content.title'],
      [
        'a content.data value',
        { channel: 'webhook', content: { data: { k: 'v\u0000' } } },
        'content.data["k"]',
      ],
      [
        'a content.data key',
        { channel: 'webhook', content: { data: { 'k\u0000': 'v' } } },
        'content.data["k\\u0000"]',
      ],
      ['a metadata value', { metadata: { k: '\u0000' } }, 'metadata["k"]'],
      ['a metadata key', { metadata: { '\u0000': 'v' } }, 'metadata["\\u0000"]'],
      ['to (email)', { to: 'a\u0000b@example.com' }, 'to'],
      ['to (push)', { channel: 'push', content: { title: 't' }, to: 'tok\u0000en' }, 'to'],
    ])('rejects %s when it contains U+0000', (_, overrides, field) => {
      expect(violations(overrides)).toEqual([{ field, description: NO_NUL }]);
    });

    it('accepts other control characters in free text when they are not NUL', () => {
      expect(() =>
        validateSend(input({ content: { subject: 's', body: 'tab\there\u0001' } }), NOW),
      ).not.toThrow();
    });
  });

  it('reports every bad field at once when several are bad', () => {
    const err = validationError({
      userId: '',
      channel: 'sms',
      content: { body: '', html: '<b/>' },
      to: 'not-a-phone',
      idempotencyKey: x(200),
      priority: 'urgent',
      category: 'Bad Category',
      sendAt: new Date(Number.NaN),
      metadata: entries(40),
      correlationId: x(200),
    });

    expect(err).toBeInstanceOf(ValidationError);
    expect(err.kind).toBe('invalid_argument');
    expect(err.violations.map((v) => v.field).sort()).toEqual(
      [
        'user_id',
        'priority',
        'content.body',
        'content.html',
        'to',
        'idempotency_key',
        'category',
        'send_at',
        'metadata',
        'correlation_id',
      ].sort(),
    );
    expect(err.message).toContain('user_id: is required');
    expect(err.message).toContain('; ');
  });
});
