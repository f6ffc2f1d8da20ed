import { createClient } from '@connectrpc/connect';
import type { Client, Interceptor, Transport } from '@connectrpc/connect';
import { AdminService } from '../gen/herald/v1/admin_pb.js';
import { DeadLetterService } from '../gen/herald/v1/dead_letter_pb.js';
import { RecipientService } from '../gen/herald/v1/recipient_pb.js';
import { TemplateService } from '../gen/herald/v1/template_pb.js';
import { PreferenceService } from '../gen/herald/v1/preference_pb.js';
import { InboxService } from '../gen/herald/v1/inbox_pb.js';
import { NotificationService } from '../gen/herald/v1/notification_pb.js';

/** The wire protocols Herald serves. */
export type HeraldProtocol = 'grpc' | 'connect' | 'grpc-web';

/** Options shared by the Node and the browser builds of `createHeraldClient`. */
export interface HeraldClientOptions {
  /** Where the api listens, e.g. `http://127.0.0.1:8080` (h2c) or `http://127.0.0.1:8081` (HTTP/1.1). */
  baseUrl: string;
  /**
   * The wire protocol. Defaults to `'grpc'` in Node and `'connect'` in browsers, which cannot speak
   * gRPC.
   */
  protocol?: HeraldProtocol;
  /** An API key (`hk_<prefix>_<secret>`) or user token, sent as `authorization: Bearer <key>`. */
  apiKey?: string;
  /** Headers sent with every call. Headers passed to a single call take precedence. */
  headers?: Record<string, string>;
  /**
   * The default deadline of every call, in milliseconds; a `timeoutMs` passed to a single call
   * takes precedence, and `timeoutMs: 0` on a call means no deadline (for long-lived watches). The
   * server sees it as `grpc-timeout` / `connect-timeout-ms` and stops working on the call when it
   * passes. Unset means no deadline.
   */
  timeoutMs?: number;
  /**
   * Connect and gRPC-Web only: use the binary protobuf format instead of JSON. Defaults to JSON for
   * Connect (readable in the network panel, what `curl` speaks) and binary for gRPC-Web.
   */
  useBinaryFormat?: boolean;
  /**
   * Node only: the HTTP version. gRPC needs `'2'` (the default for gRPC); Connect and gRPC-Web
   * default to `'1.1'`, which the HTTP/1.1 port serves. Ignored by the browser build, where the
   * browser chooses.
   */
  httpVersion?: '1.1' | '2';
}

/**
 * A typed client of `herald.v1.NotificationService`, with `herald.v1.DeadLetterService` as
 * `deadLetters`, `herald.v1.AdminService` as `admin`, `herald.v1.RecipientService` as
 * `recipients`, `herald.v1.PreferenceService` as `preferences` and `herald.v1.InboxService` as
 * `inbox`, and `herald.v1.TemplateService` as `templates`; all share one connection.
 */
export type HeraldClient = Client<typeof NotificationService> & {
  /** List, get, replay and purge dead letters. */
  deadLetters: Client<typeof DeadLetterService>;
  /** Manage the tenant's API keys (admin scope). */
  admin: Client<typeof AdminService>;
  /** Recipients: addresses, time zone, locale, push tokens. */
  recipients: Client<typeof RecipientService>;
  /** Versioned message templates (writes need the admin scope) and previews. */
  templates: Client<typeof TemplateService>;
  /** Users' opt-ins, opt-outs and quiet hours, and the tenant's defaults. */
  preferences: Client<typeof PreferenceService>;
  /** A user's in-app inbox: list, mark seen / read / unread / archived, unread count. */
  inbox: Client<typeof InboxService>;
  /**
   * Releases the client's connections: closes its HTTP/2 session or its pooled HTTP/1.1 sockets,
   * failing any call or stream still open on them. A later call opens a new connection. Idle
   * connections never keep a Node process alive, so calling this is about freeing sockets
   * promptly (tests, graceful shutdown), not about letting the process exit. A no-op in browsers.
   */
  close(): void;
};

/**
 * A client of every Herald service over one transport, as `HeraldClient` lays them out. `close`
 * releases what the transport holds (the Node build's session or sockets).
 */
export function createHeraldServiceClients(transport: Transport, close: () => void): HeraldClient {
  return Object.assign(createClient(NotificationService, transport), {
    deadLetters: createClient(DeadLetterService, transport),
    admin: createClient(AdminService, transport),
    recipients: createClient(RecipientService, transport),
    templates: createClient(TemplateService, transport),
    preferences: createClient(PreferenceService, transport),
    inbox: createClient(InboxService, transport),
    close,
  });
}

/** `HeraldClientOptions` checked and with every default applied. */
export interface ResolvedHeraldClientOptions {
  baseUrl: string;
  protocol: HeraldProtocol;
  useBinaryFormat: boolean;
  httpVersion: '1.1' | '2';
  defaultTimeoutMs: number | undefined;
  interceptors: Interceptor[];
}

/**
 * Checks the options and applies the defaults. Throws an `Error` naming the bad option, so a
 * misconfigured client fails where it is built rather than on its first call.
 */
export function resolveHeraldClientOptions(
  options: HeraldClientOptions,
  defaultProtocol: HeraldProtocol,
): ResolvedHeraldClientOptions {
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    throw new Error(`Herald client: baseUrl ${JSON.stringify(options.baseUrl)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`Herald client: baseUrl must be an http or https URL, got ${url.protocol}`);
  }
  const protocol = options.protocol ?? defaultProtocol;
  if (protocol !== 'grpc' && protocol !== 'connect' && protocol !== 'grpc-web') {
    throw new Error(
      `Herald client: protocol must be 'grpc', 'connect' or 'grpc-web', got ${String(protocol)}`,
    );
  }
  const { timeoutMs } = options;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new Error(`Herald client: timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  const httpVersion = options.httpVersion ?? (protocol === 'grpc' ? '2' : '1.1');
  if (protocol === 'grpc' && httpVersion !== '2') {
    throw new Error(
      "Herald client: gRPC needs HTTP/2; use httpVersion '2', or protocol 'connect' or 'grpc-web' over HTTP/1.1",
    );
  }
  return {
    baseUrl: options.baseUrl,
    protocol,
    useBinaryFormat: options.useBinaryFormat ?? protocol !== 'connect',
    httpVersion,
    defaultTimeoutMs: timeoutMs,
    interceptors: [createHeraldInterceptor(options)],
  };
}

/**
 * An interceptor that adds the API key (`authorization: Bearer <key>`) and the fixed headers to
 * every call, leaving alone any header the call sets itself. The deadline is not set here: the
 * transport writes the timeout header before interceptors run, so `timeoutMs` goes to the
 * transport's `defaultTimeoutMs` instead.
 */
export function createHeraldInterceptor(
  options: Pick<HeraldClientOptions, 'apiKey' | 'headers'>,
): Interceptor {
  const fixed = new Headers(options.headers);
  if (options.apiKey !== undefined) {
    fixed.set('authorization', `Bearer ${options.apiKey}`);
  }
  return (next) => (req) => {
    fixed.forEach((value, name) => {
      if (!req.header.has(name)) {
        req.header.set(name, value);
      }
    });
    return next(req);
  };
}
