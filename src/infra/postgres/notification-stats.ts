/**
 * The stats query of NotificationStore.countByChannelAndStatus. notification_tenant_window_idx
 * (tenant_id, created_at desc, id desc) include (channel, status) covers it, so PostgreSQL answers
 * with an index-only range scan over the window and never reads the table's rows.
 */
import type pg from 'pg';
import type { Channel, Status } from '../../domain/notification.js';
import type { StatsQuery } from '../../domain/ports.js';

/** The SQL and its values; exported so a test can EXPLAIN exactly what runs. */
export function statsQuery(tenantId: string, q: StatsQuery): { text: string; values: unknown[] } {
  const values: unknown[] = [tenantId, q.createdAfter, q.createdBefore];
  let channels = '';
  if (q.channels.length > 0) {
    values.push(q.channels);
    channels = ' and channel = any($4::text[])';
  }
  // Not prepared: a generic plan cannot see how wide the window is; each call is planned for its
  // own bounds (stats are polled, not hot).
  return {
    text: `select channel, status, count(*) as count from notification
           where tenant_id = $1 and created_at >= $2 and created_at < $3${channels}
           group by channel, status`,
    values,
  };
}

export async function queryStats(
  pool: pg.Pool,
  tenantId: string,
  q: StatsQuery,
): Promise<{ channel: Channel; status: Status; count: number }[]> {
  const { text, values } = statsQuery(tenantId, q);
  const { rows } = await pool.query<{ channel: string; status: string; count: string }>(
    text,
    values,
  );
  return rows.map((r) => ({
    channel: r.channel as Channel,
    status: r.status as Status,
    count: Number(r.count),
  }));
}
