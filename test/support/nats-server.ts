/**
 * A nats-server owned by one test, for what the shared server must not be put through: being
 * stopped, killed and restarted. It keeps its port and data directory across restarts.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const NATS_SERVER_BIN = '/usr/sbin/nats-server';
const READY_TIMEOUT_MS = 10_000;

export interface TestNatsServer {
  url: string;
  port: number;
  /** SIGTERM (graceful shutdown) and wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the process to exit. */
  kill(): Promise<void>;
  /** Start again on the same port and data directory. */
  start(): Promise<void>;
  /** Stop if running and delete the data directory; call once, in `afterAll`/`finally`. */
  close(): Promise<void>;
}

export interface NatsServerOptions {
  jetstream?: boolean;
  /** More command-line options (a cluster's, say). */
  args?: string[];
}

/** Spawns a nats-server on a loopback port and resolves when it is ready for clients. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<TestNatsServer> {
  const port = await freePort();
  const dataDir = opts.jetstream ? await mkdtemp(join(tmpdir(), 'herald-nats-')) : undefined;
  const args = ['-a', '127.0.0.1', '-p', String(port), ...(opts.args ?? [])];
  if (dataDir !== undefined) args.push('-js', '-sd', dataDir);
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child) throw new Error('nats-server is already running');
    const proc = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    try {
      await waitUntilReady(proc);
    } catch (err) {
      await signalAndWait(proc, 'SIGKILL');
      child = undefined;
      throw err;
    }
  };
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc) return;
    await signalAndWait(proc, signal);
    child = undefined;
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
    start,
    async close() {
      await stopWith('SIGTERM');
      if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestNatsCluster {
  /** Its nodes, named `n0`, `n1`, ... */
  nodes: TestNatsServer[];
  /** Every node's client URL, comma-separated (HERALD_NATS_URL). */
  url: string;
  close(): Promise<void>;
}

/**
 * A JetStream cluster of `size` nats-server processes on loopback, routed to each other, with
 * file storage of their own. Resolves once each node is ready for clients; JetStream elects its
 * meta leader a moment later (wait for it with a JetStream request before creating streams).
 */
export async function startNatsCluster(size: number): Promise<TestNatsCluster> {
  const clusterPorts: number[] = [];
  for (let i = 0; i < size; i++) clusterPorts.push(await freePort());
  const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const nodes = await Promise.all(
    clusterPorts.map((clusterPort, i) =>
      startNatsServer({
        jetstream: true,
        args: [
          '-n',
          `n${i}`,
          '--cluster_name',
          'herald-test',
          '--cluster',
          `nats://127.0.0.1:${clusterPort}`,
          '--routes',
          routes,
        ],
      }),
    ),
  );
  return {
    nodes,
    url: nodes.map((n) => n.url).join(','),
    async close() {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
}

/** Resolves on the server's "Server is ready" log line; rejects if it exits or times out first. */
function waitUntilReady(proc: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      if (log.includes('Server is ready')) {
        done();
        resolve();
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      done();
      reject(
        new Error(`nats-server exited (code ${code}, signal ${signal}) before ready:\n${log}`),
      );
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`nats-server not ready after ${READY_TIMEOUT_MS} ms:\n${log}`));
    }, READY_TIMEOUT_MS);
    const done = (): void => {
      clearTimeout(timer);
      proc.stderr?.off('data', onData);
      // Keep draining stderr so a chatty server never blocks on a full pipe.
      proc.stderr?.resume();
      proc.off('exit', onExit);
      proc.off('error', onError);
    };
    proc.stderr?.on('data', onData);
    proc.once('exit', onExit);
    proc.once('error', onError);
  });
}

function signalAndWait(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill(signal);
  });
}
