import { describe, expect, it } from 'vitest';
import { closeReason } from '../../src/graphql/gateway.js';

describe('closeReason', () => {
  it('keeps a short reason as it is', () => {
    expect(closeReason('Forbidden: expired')).toBe('Forbidden: expired');
  });

  it('cuts a long one to 123 bytes of UTF-8 without splitting a character', () => {
    const cut = closeReason(`Forbidden: ${'é'.repeat(100)}`);

    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(123);
    expect(Buffer.byteLength(cut)).toBeGreaterThanOrEqual(122);
    expect(cut).toBe(`Forbidden: ${'é'.repeat(56)}`);
  });
});
