/**
 * GraphQL subscription clients for tests, one per transport the gateway speaks: Server-Sent Events
 * over fetch, and graphql-ws over WebSocket. Both record every `next` payload and can leave
 * mid-stream, as a browser closing a tab would.
 */
import type { FormattedExecutionResult } from 'graphql';
import { createClient } from 'graphql-ws';
import { WebSocket } from 'ws';

export interface GraphqlRequest {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

export interface SubscriptionOptions<TData> {
  /** Sent as the `authorization` header (SSE) or connection param (WebSocket). */
  authorization?: string;
  /**
   * Called with each payload as it is recorded, before the next one is read: a `close()` from here
   * leaves right after that payload.
   */
  onNext?: (
    result: FormattedExecutionResult<TData>,
    subscription: GraphqlSubscription<TData>,
  ) => void;
}

export interface GraphqlSubscription<TData = Record<string, unknown>> {
  /** The `next` payloads received so far, in arrival order; none is added once `close()` is called. */
  readonly results: FormattedExecutionResult<TData>[];
  /**
   * Settles when the subscription ends: resolves when the server completes it or the client leaves;
   * rejects with what the transport reported: an HTTP error, or an Error whose `cause` is the
   * WebSocket's close event or the GraphQL errors of an `error` message.
   */
  readonly ended: Promise<void>;
  /** Leaves: SSE aborts the request, WebSocket disposes the client. Resolves once it has let go. */
  close(): Promise<void>;
}

/** Opens a subscription on the gateway at `url` (e.g. http://127.0.0.1:1234/graphql). */
export type Subscribe = <TData = Record<string, unknown>>(
  url: string,
  request: GraphqlRequest,
  options?: SubscriptionOptions<TData>,
) => GraphqlSubscription<TData>;

/** A subscription over Server-Sent Events (GraphQL over SSE, distinct connections mode). */
export const subscribeSse: Subscribe = <TData>(
  url: string,
  request: GraphqlRequest,
  options: SubscriptionOptions<TData> = {},
) => {
  const abort = new AbortController();
  const results: FormattedExecutionResult<TData>[] = [];

  async function read(): Promise<void> {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
      },
      body: JSON.stringify(request),
      signal: abort.signal,
    });
    if (!res.ok || res.body === null) {
      throw new Error(`SSE subscription: HTTP ${res.status}: ${await res.text()}`);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) throw new Error('SSE subscription: the stream ended without `complete`');
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const message = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (abort.signal.aborted) return;
          if (message.event === 'complete') return;
          if (message.event === 'next') {
            const result = JSON.parse(message.data) as FormattedExecutionResult<TData>;
            results.push(result);
            options.onNext?.(result, subscription);
          }
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  const ended = read().catch((err: unknown) => {
    if (!abort.signal.aborted) throw err;
  });
  // Rejections are for whoever awaits `ended`; none goes unhandled when nobody does.
  ended.catch(() => {});
  const subscription: GraphqlSubscription<TData> = {
    results,
    ended,
    async close() {
      abort.abort();
      await ended.catch(() => {});
    },
  };
  return subscription;
};

/** One Server-Sent Event: its `event:` field and its `data:` lines joined. Comments are skipped. */
function parseEvent(block: string): { event: string; data: string } {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    const colon = line.indexOf(':');
    if (colon === 0) continue;
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return { event, data: data.join('\n') };
}

/**
 * A subscription over WebSocket (graphql-ws), on a client of its own that does not retry: a close
 * by the server ends it, with the close event as `ended`'s rejection.
 */
export const subscribeWs: Subscribe = <TData>(
  url: string,
  request: GraphqlRequest,
  options: SubscriptionOptions<TData> = {},
) => {
  const client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams:
      options.authorization === undefined ? {} : { authorization: options.authorization },
    retryAttempts: 0,
  });
  const results: FormattedExecutionResult<TData>[] = [];
  let closed = false;
  let unsubscribe = () => {};
  const ended = new Promise<void>((resolve, reject) => {
    unsubscribe = client.subscribe<TData, Record<string, unknown>>(request, {
      next: (result) => {
        if (closed) return;
        results.push(result);
        options.onNext?.(result, subscription);
      },
      error: (err) =>
        closed ? resolve() : reject(new Error(describeWsError(err), { cause: err })),
      complete: resolve,
    });
  });
  ended.catch(() => {});
  const subscription: GraphqlSubscription<TData> = {
    results,
    ended,
    async close() {
      if (closed) return ended.catch(() => {});
      closed = true;
      unsubscribe();
      await client.dispose();
      await ended.catch(() => {});
    },
  };
  return subscription;
};

/** A graphql-ws sink error in words: a close event (`cause.code`), GraphQL errors, or anything else. */
function describeWsError(err: unknown): string {
  if (Array.isArray(err)) {
    return `subscription errors: ${err.map((e) => (e as { message?: unknown }).message).join('; ')}`;
  }
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const { code, reason } = err as { code: unknown; reason?: unknown };
    return `WebSocket closed: ${String(code)} ${typeof reason === 'string' ? reason : ''}`.trimEnd();
  }
  return `WebSocket subscription failed: ${String(err)}`;
}
