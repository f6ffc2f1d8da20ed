import { Code, ConnectError } from '@connectrpc/connect';
import type { ConnectRouter, HandlerContext } from '@connectrpc/connect';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '@herald/client/gen/health/v1/health_pb';
import type { HealthCheckRequest } from '@herald/client/gen/health/v1/health_pb';

/** A status that callers can set; the health protocol's other values are derived. */
export type HealthStatus = 'SERVING' | 'NOT_SERVING';

/** The `grpc.health.v1.Health` service and the handle that drives it. */
export interface HealthService {
  /** Registers `grpc.health.v1.Health` (Check, Watch, List) on the router. */
  register(router: ConnectRouter): void;
  /**
   * Sets the status of one service; `''` is the server as a whole. Ignored after `shutdown()`, so
   * nothing can flip a draining server back to SERVING.
   */
  setStatus(service: string, status: HealthStatus): void;
  /**
   * Marks every service NOT_SERVING so load balancers drain this instance, then ends open Watch
   * calls after they have received that status, so they do not hold the HTTP/2 server open.
   */
  shutdown(): void;
}

interface Watcher {
  readonly service: string;
  notify(status: ServingStatus): void;
  end(): void;
}

/**
 * Creates the gRPC health service. The server as a whole (`''`) starts SERVING; other services are
 * unknown (Check: NOT_FOUND, Watch: SERVICE_UNKNOWN) until `setStatus` names them.
 */
export function createHealthService(): HealthService {
  const statuses = new Map<string, ServingStatus>([['', ServingStatus.SERVING]]);
  const watchers = new Set<Watcher>();
  let shutDown = false;

  function update(service: string, status: ServingStatus): void {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const watcher of watchers) {
      if (watcher.service === service) watcher.notify(status);
    }
  }

  function check(request: HealthCheckRequest): { status: ServingStatus } {
    const status = statuses.get(request.service);
    if (status === undefined) {
      throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
    }
    return { status };
  }

  async function* watch(
    request: HealthCheckRequest,
    context: HandlerContext,
  ): AsyncGenerator<{ status: ServingStatus }> {
    const pending: ServingStatus[] = [
      statuses.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN,
    ];
    let ended = shutDown;
    let wake: (() => void) | undefined;
    const watcher: Watcher = {
      service: request.service,
      notify(status) {
        pending.push(status);
        wake?.();
      },
      end() {
        ended = true;
        wake?.();
      },
    };
    const onAbort = (): void => watcher.end();
    watchers.add(watcher);
    context.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        for (let status = pending.shift(); status !== undefined; status = pending.shift()) {
          yield { status };
        }
        if (ended || context.signal.aborted) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      watchers.delete(watcher);
      context.signal.removeEventListener('abort', onAbort);
    }
  }

  return {
    register(router) {
      router.service(Health, {
        check,
        watch,
        list() {
          return {
            statuses: Object.fromEntries(
              [...statuses].map(([service, status]) => [service, { status }]),
            ),
          };
        },
      });
    },
    setStatus(service, status) {
      if (shutDown) return;
      update(service, status === 'SERVING' ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    },
    shutdown() {
      shutDown = true;
      for (const service of statuses.keys()) update(service, ServingStatus.NOT_SERVING);
      for (const watcher of watchers) watcher.end();
    },
  };
}
