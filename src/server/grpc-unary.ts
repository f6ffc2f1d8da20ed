/**
 * Unary gRPC calls to Herald's own services, served straight from the HTTP/2 request instead of
 * through Connect's request pipeline. On the development machine Connect's server spent about
 * 0.3 ms of CPU per unary call (a chain of async iterables per call, ~80 KB of garbage) — more than
 * the rest of a Send — while reading the request, calling the same implementation through the same
 * interceptors and writing the answer directly costs a small fraction of that (bench/README.md,
 * "Unary gRPC without Connect's pipeline").
 *
 * Only what is plain is taken here: POST of a unary method of a service given, content type
 * `application/grpc` or `application/grpc+proto`, no request compression. Everything else — the
 * Connect and gRPC-Web protocols, JSON, compressed requests, streams, health and reflection — goes
 * to the Connect handler as before. What is taken is answered as Connect answers it: the same
 * handler context (deadline, shutdown and client-gone signals, headers, context values), the same
 * interceptors in the same order, the same status, message, details and metadata in the trailers
 * (Connect's own gRPC trailer encoding), response compression negotiated as Connect negotiates it,
 * and the same codes for malformed requests.
 */
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
} from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import type { Compression } from '@connectrpc/connect/protocol';
import {
  contentTypeProto,
  parseTimeout,
  setTrailerStatus,
} from '@connectrpc/connect/protocol-grpc';
import type { Logger } from '../domain/ports.js';

export interface GrpcUnaryOptions {
  /** The services whose unary methods are served here, each with its implementation. */
  services: readonly { service: DescService; impl: object }[];
  /** As given to the Connect handler: the first one is the outermost. */
  interceptors: readonly Interceptor[];
  /** The largest request message, in bytes (Connect's readMaxBytes). */
  readMaxBytes: number;
  /** The longest deadline a client may ask for (Connect's maxTimeoutMs). */
  maxTimeoutMs: number;
  /** Response compressions, in the server's order (Connect's acceptCompression); default none. */
  acceptCompression?: readonly Compression[];
  /** Smaller answers are never compressed (Connect's compressMinBytes); default 1024. */
  compressMinBytes?: number;
  /** Aborted when the server shuts down. */
  shutdownSignal: AbortSignal;
  logger: Logger;
}

type Implementation = (message: unknown, ctx: HandlerContext) => unknown;

interface Route {
  service: DescService;
  method: DescMethodUnary;
  impl: Implementation;
}

/** The gRPC message envelope: one flags byte and a big-endian 32-bit length. */
const ENVELOPE_HEADER = 5;
const FLAG_COMPRESSED = 0b01;
const FLAG_END_STREAM = 0b10;

/** The reason a call's context is aborted with once its answer is written. */
const CALL_ENDED = new ConnectError('the call has ended', Code.Canceled);

/**
 * Returns a request handler for the h2c server: true when it has taken the request (and will
 * answer it), false when the request is for the Connect handler.
 */
export function createGrpcUnaryHandler(
  o: GrpcUnaryOptions,
): (req: Http2ServerRequest, res: Http2ServerResponse) => boolean {
  const routes = new Map<string, Route>();
  for (const { service, impl } of o.services) {
    for (const method of service.methods) {
      if (method.methodKind !== 'unary') continue;
      const unary = method as DescMethodUnary;
      const fn = (impl as Record<string, unknown>)[method.localName];
      // A method without an implementation is Connect's to refuse (Unimplemented).
      if (typeof fn !== 'function') continue;
      routes.set(`/${service.typeName}/${method.name}`, {
        service,
        method: unary,
        impl: (fn as Implementation).bind(impl),
      });
    }
  }
  const call = chain(o.interceptors);

  return (req, res) => {
    if (req.method !== 'POST') return false;
    const route = routes.get(req.url);
    if (route === undefined) return false;
    const contentType = req.headers['content-type'];
    if (contentType !== 'application/grpc' && contentType !== contentTypeProto) return false;
    const encoding = req.headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return false;
    serve(route, req, res).catch((err: unknown) => {
      // Writing the answer failed (an invalid header value, say): the client sees the stream reset.
      o.logger.error({ err, rpc: route.method.name }, 'unary gRPC call could not be answered');
      if (!res.stream.destroyed) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    return true;
  };

  async function serve(route: Route, req: Http2ServerRequest, res: Http2ServerResponse) {
    const clientGone = new AbortController();
    let answered = false;
    res.stream.once('close', () => {
      if (!answered) clientGone.abort(new ConnectError('the client cancelled', Code.Canceled));
    });
    const timeout = parseTimeout(header(req, 'grpc-timeout'), o.maxTimeoutMs);
    const ctx = createHandlerContext({
      service: route.service,
      method: route.method,
      protocolName: 'grpc',
      requestMethod: 'POST',
      url: `http://${req.headers[':authority'] ?? 'localhost'}${req.url}`,
      timeoutMs: timeout.timeoutMs,
      shutdownSignal: o.shutdownSignal,
      requestSignal: clientGone.signal,
      requestHeader: requestHeaders(req),
      responseHeader: { 'content-type': contentTypeProto },
      responseTrailer: { 'grpc-status': '0' },
      contextValues: createContextValues(),
    });
    // As Connect negotiates it: the first encoding the client accepts that the server has; the
    // header is set whether or not this answer turns out large enough to compress.
    const compression = responseCompression(
      o.acceptCompression ?? [],
      header(req, 'grpc-accept-encoding'),
    );
    if (compression !== null) ctx.responseHeader.set('grpc-encoding', compression.name);
    let body: Uint8Array | undefined;
    try {
      if (timeout.error) throw timeout.error;
      const input = await readMessage(req, o.readMaxBytes);
      const message = binary('parse', () => fromBinary(route.method.input, input));
      const response = await call({
        stream: false,
        service: route.service,
        method: route.method,
        requestMethod: 'POST',
        url: ctx.url,
        signal: ctx.signal,
        header: ctx.requestHeader,
        contextValues: ctx.values,
        message,
        // The innermost step: the implementation, with the message as the interceptors pass it.
        invoke: async (m) => normalize(route.method.output, await route.impl(m, ctx)),
        ctx,
      });
      const output = binary('serialize', () => toBinary(route.method.output, response.message));
      body =
        compression !== null && output.byteLength >= (o.compressMinBytes ?? 1024)
          ? envelope(await compression.compress(output), FLAG_COMPRESSED)
          : envelope(output);
    } catch (err) {
      setTrailerStatus(
        ctx.responseTrailer,
        err instanceof ConnectError
          ? err
          : new ConnectError('internal error', Code.Internal, undefined, undefined, err),
      );
      req.resume();
    } finally {
      answered = true;
      ctx.abort(CALL_ENDED);
    }
    if (res.stream.destroyed || res.stream.closed) return;
    res.writeHead(200, plain(ctx.responseHeader));
    res.addTrailers(plain(ctx.responseTrailer));
    if (body === undefined) res.end();
    else res.end(body);
  }
}

interface Call extends UnaryRequest {
  invoke: (message: unknown) => Promise<unknown>;
  ctx: HandlerContext;
}

/**
 * The interceptors wrapped around the implementation, the first outermost, as Connect applies
 * them; the response's headers and trailers are the context's, as in Connect's handlers.
 */
function chain(interceptors: readonly Interceptor[]): (c: Call) => Promise<UnaryResponse> {
  const innermost = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const c = req as Call;
    return {
      stream: false,
      service: c.service,
      method: c.method,
      header: c.ctx.responseHeader,
      trailer: c.ctx.responseTrailer,
      message: (await c.invoke(c.message)) as UnaryResponse['message'],
    };
  };
  type AnyFn = Parameters<Interceptor>[0];
  const wrapped = interceptors.reduceRight<AnyFn>((next, i) => i(next), innermost as AnyFn);
  return async (c) => {
    const res = await wrapped(c);
    if (res.stream) throw new ConnectError('an interceptor returned a stream', Code.Internal);
    // An interceptor may answer with headers of its own: they join the context's.
    copy(res.header, c.ctx.responseHeader);
    copy(res.trailer, c.ctx.responseTrailer);
    return res;
  };
}

/**
 * The request's one message, bounded by `readMaxBytes`; malformed input fails with the codes
 * and messages Connect uses for it.
 */
function readMessage(req: Http2ServerRequest, readMaxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let expected = -1;
    let failed = false;
    let ended = false;
    const fail = (err: ConnectError) => {
      failed = true;
      chunks.length = 0;
      reject(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      chunks.push(chunk);
      size += chunk.length;
      if (expected === -1 && size >= ENVELOPE_HEADER) {
        const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
        const flags = head[0] ?? 0;
        const length = head.readUInt32BE(1);
        if (flags & FLAG_COMPRESSED) {
          fail(
            new ConnectError(
              'received compressed envelope, but do not know how to decompress',
              Code.Internal,
            ),
          );
        } else if (flags & FLAG_END_STREAM) {
          fail(new ConnectError('unexpected end flag', Code.InvalidArgument));
        } else if (length > readMaxBytes) {
          fail(
            new ConnectError(
              `message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`,
              Code.ResourceExhausted,
            ),
          );
        }
        expected = ENVELOPE_HEADER + length;
      }
      if (!failed && expected !== -1 && size > expected) {
        fail(
          new ConnectError(
            'protocol error: received extra input message for unary method',
            Code.Unimplemented,
          ),
        );
      }
    });
    // A client that resets the stream before its request ends gets no answer; the call ends.
    req.once('close', () => {
      if (!failed && !ended) fail(new ConnectError('the client cancelled', Code.Canceled));
    });
    req.once('end', () => {
      ended = true;
      if (failed) return;
      if (size === 0) {
        reject(
          new ConnectError(
            'protocol error: missing input message for unary method',
            Code.Unimplemented,
          ),
        );
      } else if (expected === -1 || size < expected) {
        reject(new ConnectError('protocol error: incomplete envelope', Code.InvalidArgument));
      } else {
        const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
        resolve(all.subarray(ENVELOPE_HEADER));
      }
    });
  });
}

/** Runs a protobuf step; its failure is Internal, named as Connect names it ("parse binary: ..."). */
function binary<T>(what: 'parse' | 'serialize', step: () => T): T {
  try {
    return step();
  } catch (e) {
    throw new ConnectError(
      `${what} binary: ${e instanceof Error ? e.message : String(e)}`,
      Code.Internal,
    );
  }
}

/** An implementation may return a message or its init shape, as with Connect. */
function normalize(desc: DescMessage, value: unknown) {
  return isMessage(value, desc) ? value : create(desc, value as Record<string, unknown>);
}

/**
 * Connect's choice for a request that was not compressed itself: none when the client names no
 * encoding, else the first one it names that the server has.
 */
function responseCompression(
  available: readonly Compression[],
  accepted: string | null,
): Compression | null {
  if (accepted === null || accepted === '') return null;
  for (const name of accepted.split(',')) {
    const found = available.find((c) => c.name === name.trim());
    if (found) return found;
  }
  return null;
}

/** A gRPC message envelope around `bytes` (flags 0: not compressed). */
export function envelope(bytes: Uint8Array, flags = 0): Uint8Array {
  const out = Buffer.allocUnsafe(ENVELOPE_HEADER + bytes.length);
  out[0] = flags;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, ENVELOPE_HEADER);
  return out;
}

function header(req: Http2ServerRequest, name: string): string | null {
  const v = req.headers[name];
  return typeof v === 'string' ? v : null;
}

/**
 * The request's headers without HTTP/2 pseudo-headers, as Connect gives them to handlers (as
 * pairs: the handler context makes the one Headers object of them).
 */
function requestHeaders(req: Http2ServerRequest): [string, string][] {
  const pairs: [string, string][] = [];
  for (const [k, v] of Object.entries(req.headers)) {
    if (k.startsWith(':') || v === undefined) continue;
    if (Array.isArray(v)) for (const item of v) pairs.push([k, item]);
    else pairs.push([k, v]);
  }
  return pairs;
}

function plain(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((v, k) => {
    out[k] = v;
  });
  return out;
}

function copy(from: Headers, to: Headers): void {
  if (from === to) return;
  from.forEach((v, k) => to.set(k, v));
}
