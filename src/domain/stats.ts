/**
 * GetStats: how many of a tenant's notifications created in a window are in each status, per
 * channel. The window is bounded so every answer is one bounded index range scan.
 */
import { ValidationError, type FieldViolation } from './errors.js';
import { CHANNELS, STATUSES, type Channel, type Status } from './notification.js';
import type { NotificationStore } from './ports.js';

const DAY_MS = 86_400_000;

/** The window when the request gives no start: the day before its end. */
export const STATS_DEFAULT_WINDOW_MS = DAY_MS;
/** The longest window one call may count: the index range scanned grows with it. */
export const STATS_MAX_WINDOW_MS = 31 * DAY_MS;

export interface StatsInput {
  /** Inclusive; null means STATS_DEFAULT_WINDOW_MS before `createdBefore`. */
  createdAfter: Date | null;
  /** Exclusive; null means now. */
  createdBefore: Date | null;
  /** Only these channels; empty means all. */
  channels: readonly Channel[];
}

export interface StatsRow {
  channel: Channel;
  status: Status;
  count: number;
}

export interface Stats {
  /** The window counted, defaults applied. */
  createdAfter: Date;
  createdBefore: Date;
  /** Non-zero counts only, by channel then status, in the order of CHANNELS and STATUSES. */
  rows: StatsRow[];
  total: number;
}

/** Counts the window's notifications by channel and status; ValidationError for a bad window. */
export async function countStats(
  store: Pick<NotificationStore, 'countByChannelAndStatus'>,
  tenantId: string,
  input: StatsInput,
  now: Date,
  known: readonly FieldViolation[] = [],
): Promise<Stats> {
  const before = input.createdBefore ?? now;
  const after = input.createdAfter ?? new Date(before.getTime() - STATS_DEFAULT_WINDOW_MS);
  const v: FieldViolation[] = [...known];
  if (after.getTime() >= before.getTime()) {
    v.push({
      field: 'created_before',
      description:
        input.createdBefore === null
          ? 'defaults to now, so created_after must be in the past'
          : 'must be after created_after',
    });
  } else if (before.getTime() - after.getTime() > STATS_MAX_WINDOW_MS) {
    v.push({
      field: 'created_after',
      description: `must be at most ${STATS_MAX_WINDOW_MS / DAY_MS} days before created_before${input.createdBefore === null ? ' (which defaults to now)' : ''}`,
    });
  }
  if (v.length > 0) throw new ValidationError(v);
  const counted = await store.countByChannelAndStatus(tenantId, {
    createdAfter: after,
    createdBefore: before,
    channels: input.channels,
  });
  const rank = (r: StatsRow) =>
    CHANNELS.indexOf(r.channel) * STATUSES.length + STATUSES.indexOf(r.status);
  const rows = counted.filter((r) => r.count > 0).sort((a, b) => rank(a) - rank(b));
  return {
    createdAfter: after,
    createdBefore: before,
    rows,
    total: rows.reduce((sum, r) => sum + r.count, 0),
  };
}
