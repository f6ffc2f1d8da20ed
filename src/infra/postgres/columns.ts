/**
 * Column values as pg returns them: json and jsonb arrive parsed or as text (inside json_agg, in
 * arrays), timestamps as Dates or as ISO text (inside json_build_object).
 */
export const json = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
export const date = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));
export const maybeDate = (v: Date | string | null): Date | null => (v === null ? null : date(v));
