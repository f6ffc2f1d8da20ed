/**
 * The GraphQL gateway: graphql-yoga over HTTP (queries, mutations, and subscriptions over SSE) and
 * graphql-ws over WebSocket, on one port and one path (`/graphql`). It is a pure client of the
 * api: it forwards each caller's credentials and the api enforces access.
 *
 * Protection: graphql-armor (depth, aliases, cost, tokens, directives), no field suggestions,
 * batched operations capped, a per-caller subscription cap, introspection and GraphiQL off in
 * production, unexpected errors masked.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { Code, ConnectError } from '@connectrpc/connect';
import { createHeraldClient, type HeraldClient } from '@herald/client';
import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
  type ValidationContext,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import {
  createSchema,
  createYoga,
  handleStreamOrSingleExecutionResult,
  type Plugin,
} from 'graphql-yoga';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../domain/ports.js';
import type { GatewayContext } from './context.js';
import { typeDefs } from './generated/type-defs.js';
import { createResolvers } from './resolvers.js';

export const GRAPHQL_PATH = '/graphql';

type OperationResult = ReturnType<NonNullable<Parameters<typeof useServer>[0]['execute']>>;
interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}
/** What yoga.getEnveloped gives (envelop types all of it as `any`). */
interface Enveloped extends EnvelopedRoot {
  schema: GraphQLSchema;
  parse: (source: string) => DocumentNode;
  validate: (schema: GraphQLSchema, document: DocumentNode) => readonly GraphQLError[];
  contextFactory: () => unknown;
}

export interface GatewayOptions {
  /** The api's h2c URL, e.g. http://127.0.0.1:8080. */
  apiUrl: string;
  logger: Logger;
  /** Introspection and GraphiQL off. */
  production: boolean;
  maxSubscriptionsPerCaller: number;
  /** Operations one batched request may carry. */
  maxBatch: number;
}

export interface Gateway {
  /** yoga's fetch handler, for tests without a port. */
  fetch: (request: Request) => Promise<Response>;
  listen(host: string, port: number): Promise<number>;
  /** Ends subscriptions (their api streams with them), closes sockets and the server. */
  close(): Promise<void>;
}

/** graphql-js's "Did you mean …?" hints, in all their wordings (names, enum values, fragments). */
const SUGGESTION = /\s*Did you mean [^?]*\?/g;

function stripSuggestions(errors: readonly Error[] | undefined): void {
  for (const error of errors ?? []) error.message = error.message.replace(SUGGESTION, '');
}

/**
 * Leaves the schema's names out of every error: validation errors, and the errors of variables,
 * which graphql checks when it executes (or subscribes) rather than when it validates.
 */
const noSuggestions: Plugin = {
  onValidate:
    () =>
    ({ valid, result }) => {
      if (!valid) stripSuggestions(result);
    },
  onExecute: () => ({
    onExecuteDone: (payload) =>
      handleStreamOrSingleExecutionResult(payload, ({ result }) => stripSuggestions(result.errors)),
  }),
  onSubscribe: () => ({
    onSubscribeResult: (payload) =>
      handleStreamOrSingleExecutionResult(payload, ({ result }) => stripSuggestions(result.errors)),
  }),
};

/**
 * An armor limit reported like any other validation error (every limit exceeded named, and a 400
 * under GraphQL over HTTP) instead of thrown out of validation (a 200, the first limit only).
 */
function reportedAsValidationError() {
  return {
    propagateOnRejection: false,
    onReject: [
      (ctx: ValidationContext | null, error: GraphQLError) =>
        ctx?.reportError(new GraphQLError(armorMessage(error.message))),
    ],
  };
}

/**
 * An armor rejection in words: without the "Syntax Error: " armor puts first (the operation
 * parsed; it is too big), and for the cost, how it is counted.
 */
function armorMessage(message: string): string {
  const plain = message.replace(/^Syntax Error: /, '');
  return plain.startsWith('Query Cost limit')
    ? `${plain} A list's selection counts as many times as its \`first\` asks for: ask for fewer items or fewer fields.`
    : plain;
}

/** The error under graphql's and yoga's wrappers: what actually went wrong. */
function causeOf(err: Error): unknown {
  let cause: unknown = err;
  while (cause instanceof GraphQLError && cause.originalError) cause = cause.originalError;
  return cause;
}

export function createGateway(o: GatewayOptions): Gateway {
  const herald: HeraldClient = createHeraldClient({ baseUrl: o.apiUrl, protocol: 'grpc' });
  const armor = new EnvelopArmor({
    maxDepth: { n: 10, ...reportedAsValidationError() },
    maxAliases: { n: 15, ...reportedAsValidationError() },
    costLimit: { maxCost: 5_000, ...reportedAsValidationError() },
    // Checked while parsing, before there is anything to validate: a syntax error (also a 400).
    maxTokens: { n: 2_000 },
    maxDirectives: { n: 20, ...reportedAsValidationError() },
    // Replaced by noSuggestions below: armor's only reaches validation errors, and only the
    // `Did you mean "x"?` wording, not enum values nor the variables checked at execution.
    blockFieldSuggestion: { enabled: false },
  });
  const plugins: Plugin[] = [...(armor.protect().plugins as Plugin[]), noSuggestions];
  const closing = new AbortController();
  if (o.production) {
    plugins.push({
      onValidate: ({ addValidationRule }) => addValidationRule(NoSchemaIntrospectionCustomRule),
    });
  }

  const yoga = createYoga<{ connectionParams?: Record<string, unknown> }, GatewayContext>({
    schema: createSchema<GatewayContext>({
      typeDefs,
      resolvers: createResolvers({
        maxSubscriptionsPerCaller: o.maxSubscriptionsPerCaller,
        closing: closing.signal,
      }),
    }),
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: !o.production,
    landingPage: false,
    batching: { limit: o.maxBatch },
    // Never the original error in the answer, whatever NODE_ENV says.
    maskedErrors: { isDev: false },
    plugins,
    logging: {
      debug: (...args) => o.logger.debug({ args }, 'graphql'),
      info: (...args) => o.logger.info({ args }, 'graphql'),
      warn: (...args) => o.logger.warn({ args }, 'graphql'),
      // yoga logs each error it masks, once, here: log the cause the caller does not see.
      error: (...args: unknown[]) => {
        const err = args.find((a) => a instanceof Error);
        if (err === undefined) {
          o.logger.error({ args }, 'graphql');
          return;
        }
        o.logger.error(
          { err: causeOf(err), path: err instanceof GraphQLError ? err.path : undefined },
          'graphql: unexpected error (masked)',
        );
      },
    },
    context: ({ request, connectionParams }): GatewayContext => {
      const fromWs = connectionParams?.authorization;
      return {
        authorization:
          typeof fromWs === 'string' ? fromWs : (request.headers.get('authorization') ?? null),
        herald,
      };
    },
  });

  const server = http.createServer((req, res) => void yoga(req, res));
  // Upgrades are handed over here rather than with ws's `server` option, which would also pass
  // the server's own errors (a port in use) to graphql-ws, printed as a stack trace.
  const wss = new WebSocketServer({ noServer: true, path: GRAPHQL_PATH });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  const sockets = new Set<WebSocket>();
  wss.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  useServer(
    {
      // Authentication on connect: the api judges the credential before any subscription starts.
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        try {
          await herald.listNotifications(
            { pageSize: 1 },
            {
              headers: typeof authorization === 'string' ? { authorization } : {},
            },
          );
          return true;
        } catch (err) {
          // A refused credential closes with 4403 Forbidden; the api being unreachable is not the
          // caller's fault, so it closes with 4500 and a reason the client can retry on.
          const refused = ConnectError.from(err);
          const code = refused.code;
          if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
            // 4403 as graphql-ws closes it, with the api's reason (its own close comes second
            // and changes nothing).
            ctx.extra.socket.close(4403, closeReason(`Forbidden: ${refused.rawMessage}`));
            return false;
          }
          o.logger.warn({ code: Code[code] }, 'WebSocket connect: the api did not answer');
          throw new Error('the Herald api is unavailable; retry later');
        }
      },
      // yoga's enveloped execute/subscribe ride in rootValue (set in onSubscribe below).
      execute: (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          connectionParams: ctx.connectionParams,
          request: new Request('http://gateway.local/graphql', {
            headers: { 'content-type': 'application/json' },
          }),
        }) as Enveloped;
        // A refused operation (a syntax error, one of armor's limits) is an error of that
        // operation: thrown, graphql-ws would close the socket and every subscription on it.
        let document: DocumentNode;
        try {
          document = parse(payload.query);
          const errors = validate(schema, document);
          if (errors.length > 0) return errors;
        } catch (err) {
          if (err instanceof GraphQLError) return [err];
          throw err;
        }
        return {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies EnvelopedRoot,
        };
      },
    },
    wss,
  );

  return {
    fetch: (request) => Promise.resolve(yoga.fetch(request)),
    async listen(host, port) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      const bound = (server.address() as AddressInfo).port;
      o.logger.info({ host, port: bound }, 'gateway listening');
      return bound;
    },
    async close() {
      // Subscriptions first, while the client of the api is still open: their streams end as if
      // their clients had left, instead of failing (and being logged) when the client closes.
      closing.abort();
      for (const s of sockets) s.close(1001, 'going away');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      herald.close();
    },
  };
}

/** A WebSocket close reason: at most 123 bytes of UTF-8, cut at a character boundary. */
export function closeReason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > 123) out = [...out].slice(0, -1).join('');
  return out;
}
