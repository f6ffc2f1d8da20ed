/**
 * Key-order-independent JSON: objects' keys sorted, so two values that differ only in the order
 * their keys were written serialize the same. It decides "the same request" for idempotency
 * (whose stored hashes depend on it: the output must never change) and "the same fields" for
 * template pushes.
 */
export function canonicalJson(value: unknown): string {
  // A Date is already its ISO string (toJSON) when the replacer sees it.
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
