/**
 * What every resolver gets: the caller's credentials, forwarded untouched to the api (which alone
 * decides what the caller may do), and the gateway's one client of the api.
 */
import type { HeraldClient } from '@herald/client';

export interface GatewayContext {
  /** The caller's `authorization` header (HTTP) or `authorization` connection param (WebSocket). */
  authorization: string | null;
  herald: HeraldClient;
}

/** Call options that carry the caller's credentials to the api. */
export function asCaller(
  ctx: GatewayContext,
  signal?: AbortSignal,
): { headers: Record<string, string>; signal?: AbortSignal } {
  const headers: Record<string, string> =
    ctx.authorization === null ? {} : { authorization: ctx.authorization };
  return { headers, signal };
}
