/**
 * Several api processes on one host sharing the api's ports, through node:cluster: the primary
 * listens and hands each new connection to the next api process in turn (round robin). Under
 * load the api's one event loop is Herald's bottleneck, so a host with spare cores serves more
 * with more api processes (HERALD_API_PROCESSES). Each api process is a whole api role with its
 * own PostgreSQL pool and NATS and Redis connections; what they share (rows, rate limit windows,
 * streams) lives in those services, as between api processes on different hosts.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from './domain/ports.js';

export interface ApiPorts {
  h2cPort: number;
  httpPort: number;
}

export interface ApiCluster {
  /** The ports every api process of the cluster serves. */
  ports: ApiPorts;
  /** SIGTERM to every api process (each stops gracefully); resolves when all have exited. */
  stop(): Promise<void>;
}

interface ListeningMessage {
  herald: 'api-listening';
  ports: ApiPorts;
}

function isListeningMessage(m: unknown): m is ListeningMessage {
  return typeof m === 'object' && m !== null && (m as ListeningMessage).herald === 'api-listening';
}

/** Set in the environment of the processes startApiCluster forks (and nowhere else). */
const MARK = 'HERALD_CLUSTER_API_PROCESS';

/**
 * True in a process startApiCluster forked: it runs the api alone and reports its ports. (Not
 * in any cluster worker: a process manager may run Herald itself as one.)
 */
export function isClusterApiProcess(): boolean {
  return cluster.isWorker && process.env[MARK] === '1';
}

/** In an api process of a cluster: tells the primary the api listens. */
export function reportListening(ports: ApiPorts): void {
  process.send?.({ herald: 'api-listening', ports } satisfies ListeningMessage);
}

/** How long after an api process exits its replacement starts: doubling while they fail. */
const RESTART_DELAY_MS = { first: 1_000, max: 30_000 };

/**
 * Forks `count` api processes (this script again, with its arguments and Node options) and
 * resolves once each listens. If one exits before it listens, the others are stopped and the
 * start fails (the process printed why). One that exits later is replaced.
 */
export async function startApiCluster(count: number, logger: Logger): Promise<ApiCluster> {
  const live = new Set<Worker>();
  let started = false;
  let stopping = false;
  let restartDelayMs = RESTART_DELAY_MS.first;
  /** Replacements waiting for their delay: one per exited process, all cancelled by stop(). */
  const restarts = new Set<NodeJS.Timeout>();

  function fork(): Promise<ApiPorts> {
    const worker = cluster.fork({ [MARK]: '1' });
    live.add(worker);
    let listened = false;
    return new Promise<ApiPorts>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (!isListeningMessage(m)) return;
        listened = true;
        worker.off('message', onMessage);
        if (started) logger.warn({ pid: worker.process.pid }, 'replacement api process listening');
        resolve(m.ports);
      };
      worker.on('message', onMessage);
      worker.once('exit', (code, signal) => {
        live.delete(worker);
        worker.off('message', onMessage);
        const pid = worker.process.pid;
        reject(new Error(`api process ${pid} exited (${signal ?? `code ${code}`})`));
        if (stopping || !started) return;
        // A replacement that never listened (PostgreSQL down, say) waits longer each time.
        restartDelayMs = listened
          ? RESTART_DELAY_MS.first
          : Math.min(restartDelayMs * 2, RESTART_DELAY_MS.max);
        logger.error(
          { pid, code, signal, inMs: restartDelayMs },
          'api process exited; replacing it',
        );
        const timer = setTimeout(() => {
          restarts.delete(timer);
          fork().catch(() => undefined); // its own exit schedules the next attempt
        }, restartDelayMs);
        restarts.add(timer);
      });
    });
  }

  async function stop(): Promise<void> {
    stopping = true;
    for (const timer of restarts) clearTimeout(timer);
    restarts.clear();
    await Promise.all(
      [...live].map(
        (worker) =>
          new Promise<void>((resolve) => {
            worker.once('exit', (code, signal) => {
              if (code !== 0) {
                logger.warn(
                  { pid: worker.process.pid, code, signal },
                  'api process stopped uncleanly',
                );
              }
              resolve();
            });
            worker.process.kill('SIGTERM');
          }),
      ),
    );
  }

  const results = await Promise.allSettled(Array.from({ length: count }, fork));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await stop();
    throw new Error(`could not start ${count} api processes: ${String(failed.reason)}`, {
      cause: failed.reason,
    });
  }
  started = true;
  const ports = (results[0] as PromiseFulfilledResult<ApiPorts>).value;
  return { ports, stop };
}
