#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The `herald` command: one binary, several roles.
 *
 *   herald all                          api + worker (every channel) + scheduler + GraphQL gateway
 *   herald api | scheduler              one role
 *   herald worker --channels email,sms  workers for some channels
 *   herald migrate                      apply database migrations and exit
 *
 * A larger young generation (--max-semi-space-size) cuts garbage-collection time on the send and
 * delivery paths, which allocate many short-lived objects per request.
 */
import { pino } from 'pino';
import { ADMIN_USAGE, runAdminCommand } from './admin-cli.js';
import { parseCommandLine, UsageError } from './cli-args.js';
import { isClusterApiProcess, reportListening, startApiCluster } from './api-cluster.js';
import { runMigrations, startGateway, startHerald, type Role } from './app.js';
import { ConfigError, loadConfig, portVariables, type Config } from './config.js';
import type { Logger } from './domain/ports.js';
import { GRAPHQL_PATH } from './graphql/gateway.js';
import { CHANNELS, type Channel } from './domain/notification.js';
import { HeraldError, UnavailableError } from './domain/errors.js';
import { createLogger, type Logger as ProcessLogger } from './logger.js';
import { requireSupportedNode } from './runtime.js';

const USAGE = `usage: herald <command> [options]

commands:
  all                         run api, workers for every channel, the scheduler and the gateway
  api                         run the api (gRPC/Connect on the h2c port, Connect/gRPC-Web on HTTP/1.1)
  worker [--channels a,b]     run channel workers (default: HERALD_WORKER_CHANNELS)
  scheduler                   run the scheduler sweeps
  gateway                     run the GraphQL gateway (HERALD_GATEWAY_PORT) against the api
  migrate                     apply database migrations and exit
${ADMIN_USAGE}

Configuration is read from HERALD_* environment variables (see README.md).`;

/** How to start each dependency on a development machine. */
const HINTS: Record<string, string> = {
  PostgreSQL: 'start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start',
  NATS: 'start it with: nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server &',
};

async function main(argv: string[]): Promise<number> {
  requireSupportedNode('herald');
  if (argv[0] === 'keys' || argv[0] === 'tokens' || argv[0] === 'templates') {
    const config = loadConfig(process.env);
    // Their log lines go to stderr: stdout is the result alone (a key, a token), for `$(...)`.
    const logger = createLogger({
      level: config.logLevel,
      role: argv[0],
      destination: pino.destination({ fd: 2, sync: true }),
    });
    return runAdminCommand(argv, config, logger);
  }
  const { positionals, values } = parseCommandLine(
    argv,
    { channels: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    1,
  );
  const command = positionals[0];
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.logLevel, role: command });

  if (command === 'migrate') {
    await runMigrations(config, logger);
    logger.flush();
    return 0;
  }
  if (command === 'gateway') {
    const signals = waitForSignals();
    const gateway = await startGateway(config, logger);
    console.error(
      `herald gateway: GraphQL on http://${config.api.host}:${gateway.port}${GRAPHQL_PATH} (HTTP, SSE, WebSocket)`,
    );
    return stopOnSignal(signals, () => gateway.stop(), config, logger);
  }
  const roles: Record<string, Role[]> = {
    all: ['api', 'worker', 'scheduler'],
    api: ['api'],
    worker: ['worker'],
    scheduler: ['scheduler'],
  };
  const selected = roles[command];
  if (selected === undefined) {
    console.error(`herald: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  let channels: Channel[] | undefined;
  if (values.channels !== undefined) {
    const list = values.channels.split(',').map((c) => c.trim());
    const unknown = list.filter((c) => !(CHANNELS as readonly string[]).includes(c));
    if (unknown.length > 0 || list.length === 0) {
      console.error(
        `herald: --channels: unknown channel(s) ${unknown.join(', ')}; use ${CHANNELS.join(', ')}`,
      );
      return 2;
    }
    channels = list as Channel[];
  }
  const apiProcesses = selected.includes('api') ? config.api.processes : 1;
  if (apiProcesses > 1 && isClusterApiProcess()) return runClusterApiProcess(config, logger);
  // Listen for signals before starting, so a stop requested during start-up is graceful too.
  const signals = waitForSignals();
  if (command === 'all' && config.env === 'development' && config.database.migrateOnStart) {
    await runMigrations(config, logger);
  }
  // With several api processes, this one runs the other roles and the api processes serve.
  const inProcess = apiProcesses > 1 ? selected.filter((r) => r !== 'api') : selected;
  const herald =
    inProcess.length > 0
      ? await startHerald({
          config,
          logger,
          roles: inProcess,
          channels,
          developmentKey: command === 'all' && config.env === 'development',
          crash: () => process.kill(process.pid, 'SIGKILL'),
        })
      : null;
  if (herald !== null && herald.developmentKey !== null) {
    console.error(
      `herald ${command}: created API key for development tenant ${config.tenant} (shown once; store it, e.g. export HERALD_API_KEY=…):\n${herald.developmentKey}`,
    );
  }
  const apis =
    apiProcesses > 1
      ? await startApiCluster(apiProcesses, logger).catch(async (err: unknown) => {
          await herald?.stop();
          throw err;
        })
      : null;
  const stopRoles = async () => {
    await apis?.stop();
    await herald?.stop();
  };
  const ports = apis?.ports ?? herald?.ports ?? null;
  const host = `http://${config.api.host}`;
  // herald all: the GraphQL gateway too, on this host's api.
  const gateway =
    command === 'all' && ports
      ? await startGateway(config, logger, `${host}:${ports.h2cPort}`).catch(
          async (err: unknown) => {
            await stopRoles();
            throw err;
          },
        )
      : null;
  console.error(
    ports
      ? `herald ${command}: gRPC/Connect (h2c) on ${host}:${ports.h2cPort}, ` +
          `Connect/gRPC-Web (HTTP/1.1) on ${host}:${ports.httpPort}` +
          (gateway ? `, GraphQL on ${host}:${gateway.port}${GRAPHQL_PATH}` : '') +
          (apis ? ` (${apiProcesses} api processes)` : '')
      : `herald ${command}: running; /healthz and /readyz on ${host}:${herald?.adminPort}`,
  );
  return stopOnSignal(
    signals,
    async () => {
      await gateway?.stop();
      await stopRoles();
    },
    config,
    logger,
  );
}

/**
 * One api process of several (HERALD_API_PROCESSES): the api role alone; the primary migrated,
 * made the development key and prints the addresses. It stops when the primary sends SIGTERM; a
 * terminal's Ctrl-C reaches the primary too, which then stops it, so SIGINT is left to the primary.
 */
async function runClusterApiProcess(config: Config, logger: ProcessLogger): Promise<number> {
  process.on('SIGINT', () => undefined);
  const signals = waitForSignals(['SIGTERM']);
  const herald = await startHerald({ config, logger, roles: ['api'] });
  if (herald.ports !== null) reportListening(herald.ports);
  return stopOnSignal(signals, () => herald.stop(), config, logger);
}

/** Waits for SIGINT/SIGTERM, then stops gracefully within the shutdown deadline; the exit code. */
async function stopOnSignal(
  signals: ReturnType<typeof waitForSignals>,
  stop: () => Promise<void>,
  config: Config,
  logger: Logger,
): Promise<number> {
  const signal = await signals.first;
  logger.info({ signal }, 'shutting down');
  let deadline: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    stop().then(
      () => 'stopped' as const,
      (err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        return 'failed' as const;
      },
    ),
    new Promise<'late'>((resolve) => {
      deadline = setTimeout(() => resolve('late'), config.shutdownTimeoutMs);
    }),
    signals.second.then(() => 'interrupted' as const),
  ]);
  clearTimeout(deadline);
  switch (outcome) {
    case 'stopped':
      logger.info({}, 'stopped');
      return 0;
    case 'late':
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown deadline passed; exiting');
      return 1;
    case 'interrupted':
      return 130; // a second signal: give up on the graceful stop
    case 'failed':
      return 1;
  }
}

/** The first and the second of `names` (SIGINT / SIGTERM) received from now on. */
function waitForSignals(names: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): {
  first: Promise<string>;
  second: Promise<string>;
} {
  const received: ((signal: string) => void)[] = [];
  const first = new Promise<string>((resolve) => received.push(resolve));
  const second = new Promise<string>((resolve) => received.push(resolve));
  const on = (signal: string) => received.shift()?.(signal);
  for (const name of names) process.on(name, on);
  return { first, second };
}

function describeFailure(err: unknown): string {
  if (err instanceof ConfigError) return `herald: ${err.message}`;
  if (err instanceof UnavailableError) {
    const hint = Object.entries(HINTS).find(([name]) => err.dependency.startsWith(name))?.[1];
    return `herald: cannot reach ${err.dependency}${hint ? ` — ${hint}` : ''}`;
  }
  if (err instanceof HeraldError) return `herald: ${err.message}`;
  if (isAddressInUse(err)) {
    // Only a process that loaded its configuration listens, so loading it again succeeds.
    const names = portVariables(loadConfig(process.env), err.port);
    const change = names.length > 0 ? names.join(' / ') : 'the HERALD_*_PORT variables';
    return `herald: ${err.message} — another process holds the port; set ${change} to a free port`;
  }
  return `herald: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
}

function isAddressInUse(err: unknown): err is Error & { port: number } {
  return err instanceof Error && (err as { code?: string }).code === 'EADDRINUSE';
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`herald: ${err.message}; see herald --help`);
      process.exit(2);
    }
    console.error(describeFailure(err));
    process.exit(1);
  },
);
