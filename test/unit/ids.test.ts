import { describe, expect, it, vi } from 'vitest';
import { isUuid, uuidv7 } from '../../src/domain/ids.js';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** uuidv7 keeps the last millisecond it used; every test starts later than the one before. */
let clock = Date.UTC(2030, 0, 1);
function later(): number {
  clock += 60_000;
  return clock;
}

function bytesOf(id: string): number[] {
  const hex = id.replaceAll('-', '');
  return Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

function timestampOf(id: string): number {
  return Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}

function counterOf(id: string): number {
  const b = bytesOf(id);
  return ((b[6]! & 0x0f) << 8) | b[7]!;
}

const zeros = (bytes: Uint8Array) => bytes.fill(0);
const ones = (bytes: Uint8Array) => bytes.fill(0xff);

describe('uuidv7', () => {
  it('is a lower-case RFC 9562 UUID with version 7 and variant 10 when generated', () => {
    for (const fill of [zeros, ones, undefined]) {
      const id = uuidv7(later(), fill);

      expect(id).toMatch(UUIDV7);
      const b = bytesOf(id);
      expect(b[6]! >> 4).toBe(7);
      expect(b[8]! >> 6).toBe(0b10);
      expect(isUuid(id)).toBe(true);
    }
  });

  it('embeds the given Unix milliseconds in the first 48 bits when the clock moves forward', () => {
    for (const ms of [later(), later() + 123]) {
      expect(timestampOf(uuidv7(ms))).toBe(ms);
    }
  });

  it('embeds every bit of the milliseconds when they need all 48 bits', async () => {
    // A fresh copy of the module: these far-future clocks must not leak into the other tests.
    vi.resetModules();
    const fresh = await import('../../src/domain/ids.js');

    for (const ms of [0x0102_0304_0506, 2 ** 47 + 5, 2 ** 48 - 1]) {
      expect(timestampOf(fresh.uuidv7(ms))).toBe(ms);
    }
  });

  it('keeps the random bytes outside the timestamp, version, counter and variant', () => {
    const id = uuidv7(later(), (b) => b.set([...Array(16).keys()].map((i) => 0xa0 + i)));

    const b = bytesOf(id);
    expect(b[8]).toBe(0x80 | (0xa8 & 0x3f));
    expect(b.slice(9)).toEqual([0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf]);
  });

  it('draws fresh random bytes for every id when more are made than one refill of the pool holds', () => {
    const start = later();
    const tails = Array.from({ length: 1_000 }, (_, i) => uuidv7(start + i).slice(-12));

    expect(new Set(tails).size).toBe(tails.length);
  });

  it('seeds the counter with at most 11 random bits when a new millisecond starts', () => {
    const id = uuidv7(later(), ones);

    expect(counterOf(id)).toBe(0x7ff);
  });

  it('is strictly increasing when many ids share one millisecond', () => {
    const ms = later();
    const ids = Array.from({ length: 1_000 }, () => uuidv7(ms));

    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(ids.every((id) => timestampOf(id) === ms)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('is strictly increasing when the milliseconds advance', () => {
    const start = later();
    const ids = Array.from({ length: 100 }, (_, i) => uuidv7(start + i, ones));

    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(ids.map(timestampOf)).toEqual(ids.map((_, i) => start + i));
  });

  it('borrows the next millisecond instead of repeating when the counter runs out', () => {
    const ms = later();
    // A zero seed leaves room for 4,096 ids in the millisecond; the 4,097th borrows the next one.
    const ids = Array.from({ length: 4_098 }, () => uuidv7(ms, zeros));

    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(timestampOf(ids[4_095]!)).toBe(ms);
    expect(counterOf(ids[4_095]!)).toBe(0xfff);
    expect(timestampOf(ids[4_096]!)).toBe(ms + 1);
    expect(counterOf(ids[4_096]!)).toBe(0);
    expect(ids.every((id) => UUIDV7.test(id))).toBe(true);
  });

  it('stays strictly increasing when the clock goes backwards', () => {
    const ms = later();
    const first = uuidv7(ms);
    const second = uuidv7(ms - 5_000);

    expect(second > first).toBe(true);
    expect(timestampOf(second)).toBe(ms);
  });

  it('sorts by creation time as a string when generated in order', () => {
    const ids = [later(), later(), later()].map((ms) => uuidv7(ms));

    expect([...ids].sort()).toEqual(ids);
  });
});

describe('isUuid', () => {
  it.each([
    '0197a3c2-5e1f-7abc-8def-0123456789ab',
    '00000000-0000-0000-0000-000000000000',
    'ABCDEF01-2345-6789-ABCD-EF0123456789',
  ])('accepts %s when it has the 8-4-4-4-12 hex form', (s) => {
    expect(isUuid(s)).toBe(true);
  });

  it.each([
    '',
    'not-a-uuid',
    '0197a3c25e1f7abc8def0123456789ab',
    '0197a3c2-5e1f-7abc-8def-0123456789ag',
    '{0197a3c2-5e1f-7abc-8def-0123456789ab}',
    ' 0197a3c2-5e1f-7abc-8def-0123456789ab',
  ])('rejects %j when it is not a UUID', (s) => {
    expect(isUuid(s)).toBe(false);
  });
});
