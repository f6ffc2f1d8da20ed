/**
 * The api role's HTTP servers: one Connect handler (gRPC, gRPC-Web and Connect) served on an h2c
 * port and on an HTTP/1.1 port, plus gRPC health and reflection and /healthz, /readyz. On the h2c
 * port, plain unary gRPC calls to Herald's services are answered in front of it (grpc-unary.ts).
 * createApiServer builds everything without listening; listen() and close() are separate.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { DescService } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import { compressionBrotli, compressionGzip, connectNodeAdapter } from '@connectrpc/connect-node';
import { file_google_rpc_error_details } from '@herald/client/gen/google/rpc/error_details_pb';
import { file_health_v1_health } from '@herald/client/gen/health/v1/health_pb';
import {
  DeadLetterService,
  file_herald_v1_dead_letter,
} from '@herald/client/gen/herald/v1/dead_letter_pb';
import {
  file_herald_v1_notification,
  NotificationService,
} from '@herald/client/gen/herald/v1/notification_pb';
import { AdminService, file_herald_v1_admin } from '@herald/client/gen/herald/v1/admin_pb';
import { InboxService, file_herald_v1_inbox } from '@herald/client/gen/herald/v1/inbox_pb';
import {
  PreferenceService,
  file_herald_v1_preference,
} from '@herald/client/gen/herald/v1/preference_pb';
import {
  RecipientService,
  file_herald_v1_recipient,
} from '@herald/client/gen/herald/v1/recipient_pb';
import { TemplateService, file_herald_v1_template } from '@herald/client/gen/herald/v1/template_pb';
import type { ApiKeys, Authenticator } from '../domain/access.js';
import type { Recipients } from '../domain/recipients.js';
import type { Templates } from '../domain/templates.js';
import type { DeadLetters } from '../domain/dead-letters.js';
import type { Inbox } from '../domain/inbox.js';
import type { Notifications } from '../domain/notifications.js';
import type { Preferences } from '../domain/preferences.js';
import type { Logger } from '../domain/ports.js';
import { AdminServiceHandler } from './admin-service.js';
import { authInterceptor } from './auth.js';
import { DeadLetterServiceHandler } from './dead-letter-service.js';
import { errorInterceptor } from './errors.js';
import { createGrpcUnaryHandler } from './grpc-unary.js';
import { createHealthService } from './health.js';
import { InboxServiceHandler } from './inbox-service.js';
import { NotificationServiceHandler } from './notification-service.js';
import { PreferenceServiceHandler } from './preference-service.js';
import { RecipientServiceHandler } from './recipient-service.js';
import { TemplateServiceHandler } from './template-service.js';
import { registerReflection } from './reflection.js';

export interface ReadinessReport {
  ready: boolean;
  /** Dependency name -> 'ok' or what is wrong with it. */
  checks: Record<string, string>;
  /** Informational counters that do not decide readiness (e.g. Redis failures in fail-open). */
  counters?: Record<string, number>;
}

export interface ApiServerDeps {
  notifications: Notifications;
  deadLetters: DeadLetters;
  apiKeys: ApiKeys;
  recipients: Recipients;
  templates: Templates;
  preferences: Preferences;
  inbox: Inbox;
  authenticator: Authenticator;
  /** Calls per second per caller for RPCs other than Send. */
  callsPerSecond: number;
  logger: Logger;
  /** Checks the dependencies (PostgreSQL, NATS) for /readyz. */
  readiness: () => Promise<ReadinessReport>;
  maxRequestBytes: number;
  maxTimeoutMs: number;
  /** HTTP/1.1: the most a client may take to send a request's headers. */
  headersTimeoutMs: number;
  /** The most a client may take to send a whole request, headers and body (both ports). */
  requestTimeoutMs: number;
  /** h2c: a session without an open stream for this long is closed. */
  h2cIdleTimeoutMs: number;
  /** Serve plain unary gRPC calls without Connect's request pipeline (HERALD_GRPC_FAST_PATH). */
  grpcUnaryFastPath: boolean;
}

export interface ListenOptions {
  host: string;
  h2cPort: number;
  httpPort: number;
}

export interface ApiServer {
  listen(options: ListenOptions): Promise<{ h2cPort: number; httpPort: number }>;
  /** Stops intake (health NOT_SERVING), ends open streams, and closes both servers. */
  close(): Promise<void>;
  /** WatchNotifications streams open right now. */
  openWatches(): number;
}

export function createApiServer(deps: ApiServerDeps): ApiServer {
  const notificationService = new NotificationServiceHandler(deps.notifications, deps.logger);
  const health = createHealthService();
  const shutdown = new AbortController();
  // Herald's own services, each with its implementation.
  const services: [DescService, object][] = [
    [NotificationService, notificationService],
    [DeadLetterService, new DeadLetterServiceHandler(deps.deadLetters)],
    [AdminService, new AdminServiceHandler(deps.apiKeys)],
    [RecipientService, new RecipientServiceHandler(deps.recipients)],
    [TemplateService, new TemplateServiceHandler(deps.templates)],
    [PreferenceService, new PreferenceServiceHandler(deps.preferences)],
    [InboxService, new InboxServiceHandler(deps.inbox)],
  ];
  const routes = (router: ConnectRouter) => {
    for (const [service, impl] of services) router.service(service, impl);
    health.register(router);
    registerReflection(router, [
      file_herald_v1_notification,
      file_herald_v1_dead_letter,
      file_herald_v1_admin,
      file_herald_v1_recipient,
      file_herald_v1_template,
      file_herald_v1_preference,
      file_herald_v1_inbox,
      file_health_v1_health,
      file_google_rpc_error_details,
    ]);
  };
  for (const [service] of services) health.setStatus(service.typeName, 'SERVING');

  // The error mapping wraps everything, authentication included.
  const interceptors = [
    errorInterceptor(deps.logger),
    authInterceptor({
      authenticator: deps.authenticator,
      callsPerSecond: deps.callsPerSecond,
    }),
  ];
  // Connect's defaults, named here so that both paths below answer alike.
  const acceptCompression = [compressionGzip, compressionBrotli];
  const compressMinBytes = 1024;
  const handler = connectNodeAdapter({
    routes,
    interceptors,
    // Connect JSON is read strictly, as protobuf's JSON mapping specifies (Connect relaxes it): a
    // misspelt key or an unknown enum value ("priority": "HIGH") is an InvalidArgument naming it,
    // never a field silently left at its default.
    jsonOptions: { ignoreUnknownFields: false },
    acceptCompression,
    compressMinBytes,
    readMaxBytes: deps.maxRequestBytes,
    maxTimeoutMs: deps.maxTimeoutMs,
    shutdownSignal: shutdown.signal,
    fallback: createProbeHandler(deps.readiness, () => shutdown.signal.aborted),
  });
  // Plain unary gRPC calls to Herald's services skip Connect's request pipeline (grpc-unary.ts);
  // everything else on the h2c port is Connect's.
  const grpcUnary = !deps.grpcUnaryFastPath
    ? undefined
    : createGrpcUnaryHandler({
        services: services.map(([service, impl]) => ({ service, impl })),
        interceptors,
        readMaxBytes: deps.maxRequestBytes,
        maxTimeoutMs: deps.maxTimeoutMs,
        acceptCompression,
        compressMinBytes,
        shutdownSignal: shutdown.signal,
        logger: deps.logger,
      });

  const h2c = http2.createServer(
    grpcUnary === undefined
      ? handler
      : (req, res) => {
          if (!grpcUnary(req, res)) handler(req, res);
        },
  );
  // Both limits bound receiving the request only: once it is in, a response (a Watch) may stream
  // for as long as it likes. No socket inactivity timeout either, for the same reason.
  const h1 = http.createServer(
    {
      headersTimeout: deps.headersTimeoutMs,
      requestTimeout: deps.requestTimeoutMs,
      // Node enforces both only when it checks, every 30 s by default: check often enough that
      // a slow client is dropped close to its deadline.
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, deps.headersTimeoutMs / 4)),
    },
    handler,
  );
  // Sessions are tracked so close() can send GOAWAY: clients keep HTTP/2 sessions open.
  const sessions = new Set<http2.ServerHttp2Session>();
  h2c.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
    guardH2cSession(s, deps.h2cIdleTimeoutMs, deps.requestTimeoutMs);
  });

  return {
    openWatches: () => notificationService.openWatches,
    async listen(options) {
      await listenOn(h2c, options.host, options.h2cPort);
      await listenOn(h1, options.host, options.httpPort);
      const ports = {
        h2cPort: (h2c.address() as AddressInfo).port,
        httpPort: (h1.address() as AddressInfo).port,
      };
      deps.logger.info({ host: options.host, ...ports }, 'api listening');
      return ports;
    },
    async close() {
      health.shutdown();
      shutdown.abort();
      const closed = Promise.all([closeServer(h2c), closeServer(h1)]);
      for (const s of sessions) s.close();
      h1.closeIdleConnections();
      await closed;
    },
  };
}

/**
 * Drops slow and silent h2c clients without touching healthy long-lived streams. Node's own http2
 * timeouts (server.setTimeout, session and stream setTimeout) all measure inactivity, which is the
 * wrong test both ways: a Watch is rightly silent for as long as nothing changes, and a client that
 * trickles a byte now and then is never inactive. So two deadlines of our own instead:
 * - a session with no open stream for `idleMs` is closed (GOAWAY): a client that connects and
 *   sends nothing, only pings, or never completes a header block;
 * - a stream must have received its whole request (the client's END_STREAM) within `requestMs`, or
 *   it is reset with CANCEL: a request body that never ends. After that the response may stream
 *   for as long as it likes. A bidi stream (gRPC reflection) keeps its request side open, so it
 *   gets `requestMs` in all; Herald's own RPCs are unary or server-streaming.
 */
function guardH2cSession(
  session: http2.ServerHttp2Session,
  idleMs: number,
  requestMs: number,
): void {
  let open = 0;
  let idle: NodeJS.Timeout | undefined;
  const startIdle = () => {
    idle = setTimeout(() => {
      if (open === 0 && !session.closed && !session.destroyed) session.close();
    }, idleMs);
    idle.unref();
  };
  startIdle();
  session.once('close', () => clearTimeout(idle));
  session.on('stream', (stream) => {
    open += 1;
    clearTimeout(idle);
    const deadline = setTimeout(() => {
      if (!stream.destroyed && !stream.closed && stream.state.remoteClose !== 1) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    }, requestMs);
    deadline.unref();
    stream.once('close', () => {
      clearTimeout(deadline);
      open -= 1;
      if (open === 0 && !session.closed && !session.destroyed) startIdle();
    });
  });
}

/**
 * /healthz (the process is alive) and /readyz (its dependencies answer; 503 while stopping).
 * The api serves it as the Connect handler's fallback; workers and the scheduler on an admin port.
 */
export function createProbeHandler(
  readiness: () => Promise<ReadinessReport>,
  stopping: () => boolean,
) {
  return (req: { method?: string; url?: string }, res: PlainResponse): void => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      json(res, 200, { status: 'ok' });
    } else if (req.method === 'GET' && path === '/readyz') {
      readiness()
        .then((r) => json(res, r.ready && !stopping() ? 200 : 503, r))
        .catch((err: unknown) => json(res, 503, { ready: false, error: String(err) }));
    } else {
      json(res, 404, { error: 'not found' });
    }
  };
}

/** The part of a Node response (HTTP/1.1 or HTTP/2) the probes use. */
interface PlainResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

function json(res: PlainResponse, status: number, body: unknown) {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

/** A plain HTTP/1.1 server for the probes of roles without the api. */
export async function listenProbes(
  readiness: () => Promise<ReadinessReport>,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  let stopping = false;
  const probes = createProbeHandler(readiness, () => stopping);
  const server = http.createServer((req, res) => probes(req, res));
  await listenOn(server, host, port);
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      stopping = true;
      server.closeIdleConnections();
      await closeServer(server);
    },
  };
}

function listenOn(server: http.Server | http2.Http2Server, host: string, port: number) {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: http.Server | http2.Http2Server) {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
