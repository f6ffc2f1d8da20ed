/**
 * Quiet hours: a daily window of local wall-clock time (e.g. 22:00–08:00, which wraps midnight)
 * during which non-critical notifications are held back, and the instant a held-back one may go.
 * Computed in the recipient's IANA time zone with Intl alone, so DST changes are exact:
 *
 * - a due instant is inside the window when its local wall clock (hours and minutes) is;
 * - it is released at the first instant after it whose wall clock reads the window's end;
 * - an end that does not exist that day (the clocks spring forward over it) → the next minute that
 *   does exist (22:00–02:30 in New York on 2026-03-08 ends at 03:00 EDT);
 * - an end that happens twice (the clocks fall back over it) → the first of the two that is still
 *   after the due instant (22:00–01:30 in New York on 2026-11-01 ends at 01:30 EDT, the earlier
 *   one, unless the due instant is already past it).
 */

/** A window of local wall-clock time in minutes after midnight; `start` may exceed `end` (wrap). */
export interface QuietWindow {
  start: number;
  end: number;
}

const HHMM = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** Minutes after midnight of "HH:MM" (00:00 to 23:59), or null when it is not that. */
export function parseHhMm(text: string): number | null {
  const m = HHMM.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

const HHMM_RULE = 'must be a local time "HH:MM" (00:00 to 23:59)';

/**
 * The window from "HH:MM" `start` to "HH:MM" `end` (the one rule of preferences and of
 * HERALD_DEFAULT_QUIET_HOURS), or the rule each bad end broke.
 */
export function parseWindow(
  start: string,
  end: string,
): { ok: true; window: QuietWindow } | { ok: false; start?: string; end?: string } {
  const s = parseHhMm(start);
  const e = parseHhMm(end);
  if (s !== null && e !== null && s !== e) return { ok: true, window: { start: s, end: e } };
  return {
    ok: false,
    ...(s === null ? { start: HHMM_RULE } : {}),
    ...(e === null ? { end: HHMM_RULE } : s === e ? { end: 'must differ from start' } : {}),
  };
}

/** The window of "HH:MM-HH:MM" (e.g. 22:00-08:00), or null when the text is not one. */
export function parseWindowText(text: string): QuietWindow | null {
  const parts = text.split('-');
  if (parts.length !== 2) return null;
  const parsed = parseWindow((parts[0] ?? '').trim(), (parts[1] ?? '').trim());
  return parsed.ok ? parsed.window : null;
}

/** "HH:MM" of minutes after midnight. */
export function formatHhMm(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** "22:00–08:00" (an en dash), as status reasons and docs write a window. */
export function describeWindow(w: QuietWindow): string {
  return `${formatHhMm(w.start)}–${formatHhMm(w.end)}`;
}

/** True when the wall-clock minute `m` (after midnight) is inside the window. */
export function insideWindow(w: QuietWindow, m: number): boolean {
  if (w.start === w.end) return false;
  return w.start < w.end ? m >= w.start && m < w.end : m >= w.start || m < w.end;
}

/**
 * When a notification due at `due` may be delivered: null when `due` is outside the window (no
 * deferral), else the first instant after `due` at which the window is over, in `timeZone`.
 */
export function quietHoursRelease(due: Date, window: QuietWindow, timeZone: string): Date | null {
  const local = wallClock(due.getTime(), timeZone);
  const minute = local.hour * 60 + local.minute;
  if (!insideWindow(window, minute)) return null;
  // Inside a wrapping window before midnight: it ends tomorrow; otherwise today.
  const dayOffset = window.start > window.end && minute >= window.start ? 1 : 0;
  // The wall time as if it were UTC: plain calendar arithmetic, free of DST.
  const endWall =
    Date.UTC(local.year, local.month - 1, local.day + dayOffset) + window.end * MINUTE_MS;
  // Step forward a minute at a time past a gap (spring forward: at most the size of the jump).
  for (let step = 0; step <= 24 * 60; step++) {
    const wall = endWall + step * MINUTE_MS;
    const after = instantsAt(wall, timeZone).filter((t) => t > due.getTime());
    if (after.length > 0) return new Date(Math.min(...after));
  }
  throw new Error(`no instant ends quiet hours after ${due.toISOString()} in ${timeZone}`);
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The local calendar date and wall-clock time of an instant in a zone. */
export function wallClock(instant: number, timeZone: string): WallClock {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(instant)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year ?? 0,
    month: parts.month ?? 0,
    day: parts.day ?? 0,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
  };
}

/** The wall clock of an instant as a UTC timestamp (minute precision). */
function wallAsUtc(instant: number, timeZone: string): number {
  const w = wallClock(instant, timeZone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute);
}

/**
 * Every instant whose wall clock in the zone reads `wall` (a wall time written as UTC), earliest
 * first: none in a spring-forward gap, two in a repeated autumn hour, otherwise one. The zone's
 * offset is sampled a day either side, which covers any offset (−12 h to +14 h) and the one
 * transition a day can hold.
 */
function instantsAt(wall: number, timeZone: string): number[] {
  const offsets = new Set(
    [wall - DAY_MS, wall, wall + DAY_MS].map((t) => wallAsUtc(t, timeZone) - floorMinute(t)),
  );
  const found = new Set<number>();
  for (const offset of offsets) {
    const candidate = wall - offset;
    if (wallAsUtc(candidate, timeZone) === wall) found.add(candidate);
  }
  return [...found].sort((a, b) => a - b);
}

const floorMinute = (t: number) => Math.floor(t / MINUTE_MS) * MINUTE_MS;
