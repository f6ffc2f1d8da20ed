/**
 * Opening the one NATS connection a process uses. The first connect fails fast so a
 * misconfigured or absent server is a one-line error at startup; after that the client
 * reconnects forever, because a broker restart must not take the process down.
 */
import { connect } from '@nats-io/transport-node';
import type { NatsConnection, Status } from '@nats-io/nats-core';
import { UnavailableError } from '../../domain/errors.js';

/** The part of a pino logger this module uses. */
export interface NatsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ConnectNatsOptions {
  /** One URL or a comma-separated list, e.g. `nats://127.0.0.1:4222`. */
  servers: string;
  /** Client name shown in the server's monitoring. */
  name: string;
  logger?: NatsLogger;
  /** How long the first connect may take (TCP + handshake) before giving up. Default 5000. */
  connectTimeoutMs?: number;
  /** Pause between reconnect attempts to the same server. Default 1000. */
  reconnectTimeWaitMs?: number;
}

/**
 * Connects to NATS. Throws {@link UnavailableError} (`NATS at <url> is unavailable`, the client's
 * error as `cause`) if the first connect fails; once connected, reconnects without limit and
 * reports disconnects and reconnects through `logger`.
 */
export async function connectNats(opts: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = opts.servers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: opts.reconnectTimeWaitMs ?? 1000,
      timeout: opts.connectTimeoutMs ?? 5000,
      waitOnFirstConnect: false,
      // Requests (every JetStream publish) would otherwise build two Error objects with stack
      // traces each; on the send path that is measurable CPU and garbage.
      noAsyncTraces: true,
    });
  } catch (cause) {
    throw new UnavailableError(`NATS at ${servers.map(redactUrl).join(',')}`, { cause });
  }
  if (opts.logger) watchStatus(nc, opts.logger);
  return nc;
}

function watchStatus(nc: NatsConnection, logger: NatsLogger): void {
  void (async () => {
    for await (const s of nc.status()) logStatus(s, logger);
  })().catch((err: unknown) => {
    logger.error({ err }, 'NATS status monitor failed');
  });
}

function logStatus(s: Status, logger: NatsLogger): void {
  switch (s.type) {
    case 'disconnect':
      logger.warn({ server: s.server }, 'NATS disconnected; reconnecting');
      break;
    case 'reconnect':
      logger.info({ server: s.server }, 'NATS reconnected');
      break;
    case 'error':
      logger.error({ err: s.error }, 'NATS error');
      break;
    case 'staleConnection':
      logger.warn({}, 'NATS connection is stale; reconnecting');
      break;
    case 'ldm':
      logger.warn({ server: s.server }, 'NATS server entering lame duck mode');
      break;
    case 'slowConsumer':
      logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
      break;
    default:
      // reconnecting (once per attempt), ping, update, forceReconnect, close: too chatty or
      // reported by the caller.
      break;
  }
}

/** Drops credentials from a server URL before it goes into an error message. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}
