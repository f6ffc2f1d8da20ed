/**
 * The reliability ledger (RELIABILITY.md): what the load generator was told was accepted, what the
 * fake provider received (by notification id), and the final states in PostgreSQL.
 * lost = accepted ids with no terminal state; duplicated = ids the provider received more than
 * once; phantom = provider messages with no accepted id.
 */
import type pg from 'pg';

export interface LedgerReport {
  accepted: number;
  lost: string[];
  duplicated: string[];
  phantom: string[];
  /** Final status -> count, over the accepted ids. */
  statuses: Record<string, number>;
}

export async function reconcileLedger(
  pool: pg.Pool,
  accepted: readonly string[],
  received: readonly string[],
): Promise<LedgerReport> {
  const { rows } = await pool.query<{ id: string; status: string }>(
    'select id, status from notification where id = any($1::uuid[])',
    [accepted],
  );
  const status = new Map(rows.map((r) => [r.id, r.status]));
  const terminal = new Set(['DELIVERED', 'FAILED', 'CANCELLED', 'SUPPRESSED']);
  const counts = new Map<string, number>();
  for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
  const acceptedSet = new Set(accepted);
  const statuses: Record<string, number> = {};
  for (const s of status.values()) statuses[s] = (statuses[s] ?? 0) + 1;
  return {
    accepted: accepted.length,
    lost: accepted.filter((id) => !terminal.has(status.get(id) ?? '')),
    duplicated: [...counts].filter(([, c]) => c > 1).map(([id]) => id),
    phantom: [...counts.keys()].filter((id) => !acceptedSet.has(id)),
    statuses,
  };
}

/** One line for the test output: the ledger's counts. */
export function printLedger(name: string, r: LedgerReport): void {
  console.log(
    `ledger ${name}: accepted ${r.accepted}, lost ${r.lost.length}, duplicated ${r.duplicated.length}, phantom ${r.phantom.length}, statuses ${JSON.stringify(r.statuses)}`,
  );
}
