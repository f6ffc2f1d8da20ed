import { describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../src/domain/errors.js';
import { echoesOf, redactEchoes, withoutEchoes } from '../../src/providers/redact.js';
import { storedNotification } from '../support/notification.js';

const n = storedNotification({
  to: 'Ada.Lovelace@example.com',
  content: { subject: 'Your "order"', body: 'Tracking code ZX-41', data: { token: 'tok/é 1' } },
  metadata: { note: 'secret note' },
});

describe('redactEchoes', () => {
  it('removes the recipient and the content however the reply quotes them', () => {
    const reply = [
      'to ADA.LOVELACE@EXAMPLE.COM',
      'subject "Your \\"order\\""',
      'body tracking code zx-41',
      `data ${encodeURIComponent('tok/é 1')}`,
      'metadata secret note',
    ].join('; ');

    const clean = redactEchoes(reply, echoesOf(n));

    expect(clean).toBe(
      'to [redacted]; subject "[redacted]"; body [redacted]; data [redacted]; metadata [redacted]',
    );
  });

  it('removes anything shaped like an email address or a phone number, keeping IP addresses', () => {
    const clean = redactEchoes(
      'forwarded to grace@example.org, +1 (555) 010-9999 and 15550109999 via 192.168.100.200 (code 21211)',
      [],
    );

    expect(clean).toBe(
      'forwarded to [redacted], [redacted] and [redacted] via 192.168.100.200 (code 21211)',
    );
  });

  it('bounds the length', () => {
    expect(redactEchoes('x'.repeat(400), [], 300)).toBe(`${'x'.repeat(300)}…`);
  });
});

describe('withoutEchoes', () => {
  it('keeps the kind of error and its Retry-After, and drops the cause holding the raw reply', () => {
    const cause = new Error('550 <ada.lovelace@example.com> unknown');
    const transient = withoutEchoes(
      new TransientDeliveryError(`smtp: ${cause.message}`, { retryAfterMs: 5_000, cause }),
      echoesOf(n),
    );
    const permanent = withoutEchoes(
      new PermanentDeliveryError(`smtp: ${cause.message}`, { cause }),
      echoesOf(n),
    );

    expect(transient).toBeInstanceOf(TransientDeliveryError);
    expect(transient).toMatchObject({
      message: 'smtp: 550 <[redacted]> unknown',
      retryAfterMs: 5_000,
    });
    expect(transient.cause).toBeUndefined();
    expect(permanent).toBeInstanceOf(PermanentDeliveryError);
    expect(permanent.message).toBe('smtp: 550 <[redacted]> unknown');
  });
});
