/**
 * Quiet-hours deferral in the recipient's zone, on ordinary days and across both DST changes of
 * 2026 in New York (03-08, 11-01) and London (03-29, 10-25).
 */
import { describe, expect, it } from 'vitest';
import {
  describeWindow,
  parseHhMm,
  parseWindow,
  parseWindowText,
  quietHoursRelease,
  type QuietWindow,
} from '../../src/domain/quiet-hours.js';

const window = (start: string, end: string): QuietWindow => ({
  start: parseHhMm(start) as number,
  end: parseHhMm(end) as number,
});
const NIGHT = window('22:00', '08:00');
const release = (dueUtc: string, w: QuietWindow, zone: string) =>
  quietHoursRelease(new Date(dueUtc), w, zone)?.toISOString() ?? null;

describe('parseWindow', () => {
  it('reads two different local times, naming each bad end otherwise', () => {
    expect(parseWindow('22:00', '08:00')).toEqual({ ok: true, window: NIGHT });
    expect(parseWindow('7:00', '24:00')).toEqual({
      ok: false,
      start: 'must be a local time "HH:MM" (00:00 to 23:59)',
      end: 'must be a local time "HH:MM" (00:00 to 23:59)',
    });
    expect(parseWindow('08:00', '08:00')).toEqual({ ok: false, end: 'must differ from start' });
  });

  it('reads "HH:MM-HH:MM" (as HERALD_DEFAULT_QUIET_HOURS does) and nothing else', () => {
    expect(parseWindowText('22:00-08:00')).toEqual(NIGHT);
    expect(parseWindowText(' 22:00 - 08:00 ')).toEqual(NIGHT);
    for (const bad of ['22:00', '22:00-08:00-09:00', '22:00-22:00', '22:00–08:00', 'off', '']) {
      expect(parseWindowText(bad), bad).toBeNull();
    }
  });
});

describe('parseHhMm', () => {
  it('reads 00:00 to 23:59 and nothing else', () => {
    expect(parseHhMm('00:00')).toBe(0);
    expect(parseHhMm('08:30')).toBe(510);
    expect(parseHhMm('23:59')).toBe(1439);
    for (const bad of ['24:00', '7:00', '07:60', '0700', '07:00:00', '', ' 07:00']) {
      expect(parseHhMm(bad), bad).toBeNull();
    }
    expect(describeWindow(NIGHT)).toBe('22:00–08:00');
  });
});

describe('quietHoursRelease in America/New_York', () => {
  const NY = 'America/New_York';

  it('does not defer outside the window', () => {
    expect(release('2026-06-15T16:00:00Z', NIGHT, NY)).toBeNull(); // 12:00 EDT
    expect(release('2026-06-16T12:00:00Z', NIGHT, NY)).toBeNull(); // 08:00 EDT: the window is over
    expect(release('2026-06-16T01:59:00Z', NIGHT, NY)).toBeNull(); // 21:59 EDT
  });

  it('defers to 08:00 the next morning on an ordinary night', () => {
    expect(release('2026-06-16T03:30:45Z', NIGHT, NY)).toBe('2026-06-16T12:00:00.000Z'); // 23:30
    expect(release('2026-06-16T02:00:00Z', NIGHT, NY)).toBe('2026-06-16T12:00:00.000Z'); // 22:00
    expect(release('2026-06-16T07:00:00Z', NIGHT, NY)).toBe('2026-06-16T12:00:00.000Z'); // 03:00
  });

  it('ends at 08:00 EDT on the night the clocks spring forward (2026-03-08)', () => {
    // 23:00 EST on the 7th; 08:00 the next morning is already EDT (UTC−4).
    expect(release('2026-03-08T04:00:00Z', NIGHT, NY)).toBe('2026-03-08T12:00:00.000Z');
    // 03:30 EDT, after the jump.
    expect(release('2026-03-08T07:30:00Z', NIGHT, NY)).toBe('2026-03-08T12:00:00.000Z');
  });

  it('moves an end that does not exist (02:30 on 2026-03-08) to the next existing minute', () => {
    // 01:45 EST; 02:00–02:59 is skipped, so 03:00 EDT.
    expect(release('2026-03-08T06:45:00Z', window('22:00', '02:30'), NY)).toBe(
      '2026-03-08T07:00:00.000Z',
    );
    // A start inside the gap: 03:10 EDT is past it, so inside; ends at 06:00 EDT.
    expect(release('2026-03-08T07:10:00Z', window('02:30', '06:00'), NY)).toBe(
      '2026-03-08T10:00:00.000Z',
    );
  });

  it('ends at 08:00 EST on the night the clocks fall back (2026-11-01)', () => {
    // 23:00 EDT on 10-31; 08:00 the next morning is EST (UTC−5).
    expect(release('2026-11-01T03:00:00Z', NIGHT, NY)).toBe('2026-11-01T13:00:00.000Z');
  });

  it('takes the first 01:30 still ahead when the end falls in the repeated hour', () => {
    const w = window('22:00', '01:30');
    // 00:30 EDT: the first 01:30 (EDT) is ahead.
    expect(release('2026-11-01T04:30:00Z', w, NY)).toBe('2026-11-01T05:30:00.000Z');
    // 01:40 EDT: the wall clock is past 01:30, so outside.
    expect(release('2026-11-01T05:40:00Z', w, NY)).toBeNull();
    // 01:15 EST, the second pass: the wall clock is inside again; the EDT 01:30 is past, so EST.
    expect(release('2026-11-01T06:15:00Z', w, NY)).toBe('2026-11-01T06:30:00.000Z');
  });
});

describe('quietHoursRelease in Europe/London', () => {
  const LDN = 'Europe/London';

  it('defers to 08:00 the next morning on an ordinary night', () => {
    expect(release('2026-07-01T21:30:00Z', NIGHT, LDN)).toBe('2026-07-02T07:00:00.000Z'); // 22:30 BST
    expect(release('2026-01-15T23:59:00Z', NIGHT, LDN)).toBe('2026-01-16T08:00:00.000Z'); // GMT
    expect(release('2026-07-01T12:00:00Z', NIGHT, LDN)).toBeNull();
  });

  it('ends at 08:00 BST on the night the clocks spring forward (2026-03-29)', () => {
    expect(release('2026-03-28T23:00:00Z', NIGHT, LDN)).toBe('2026-03-29T07:00:00.000Z');
  });

  it('moves an end that does not exist (01:30 on 2026-03-29) to 02:00 BST', () => {
    expect(release('2026-03-29T00:45:00Z', window('23:00', '01:30'), LDN)).toBe(
      '2026-03-29T01:00:00.000Z',
    );
  });

  it('ends at 08:00 GMT on the night the clocks fall back (2026-10-25)', () => {
    expect(release('2026-10-24T22:30:00Z', NIGHT, LDN)).toBe('2026-10-25T08:00:00.000Z');
  });

  it('takes the first 01:30 still ahead when the end falls in the repeated hour', () => {
    const w = window('23:00', '01:30');
    // 00:20 BST → 01:30 BST.
    expect(release('2026-10-24T23:20:00Z', w, LDN)).toBe('2026-10-25T00:30:00.000Z');
    // 01:10 GMT, the second pass → 01:30 GMT.
    expect(release('2026-10-25T01:10:00Z', w, LDN)).toBe('2026-10-25T01:30:00.000Z');
  });
});

describe('quietHoursRelease with other windows', () => {
  it('handles a window that does not wrap midnight', () => {
    const day = window('09:00', '17:00');
    expect(release('2026-05-05T12:00:00Z', day, 'UTC')).toBe('2026-05-05T17:00:00.000Z');
    expect(release('2026-05-05T17:00:00Z', day, 'UTC')).toBeNull();
    expect(release('2026-05-05T08:59:00Z', day, 'UTC')).toBeNull();
  });

  it('treats a window that starts where it ends as empty', () => {
    expect(release('2026-05-05T12:00:00Z', window('12:00', '12:00'), 'UTC')).toBeNull();
  });

  it('crosses a month and a year end', () => {
    expect(release('2026-12-31T23:00:00Z', NIGHT, 'UTC')).toBe('2027-01-01T08:00:00.000Z');
    // 03:30 IST (UTC+5:30) on 01-01 → 08:00 IST.
    expect(release('2026-12-31T22:00:00Z', NIGHT, 'Asia/Kolkata')).toBe('2027-01-01T02:30:00.000Z');
  });
});
