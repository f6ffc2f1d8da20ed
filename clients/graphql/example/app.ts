/**
 * The example page: a user's notifications, updated live. No library runs in the browser: the
 * typed documents from ../generated.ts are plain operation text at run time, the query goes over
 * `fetch`, and the feed over a WebSocket speaking graphql-transport-ws (the protocol of
 * graphql-ws) by hand.
 *
 * Each notification is a `<tr data-id data-status data-version>`, updated in place.
 */
import {
  MyFeedDocument,
  MyNotificationsDocument,
  type NotificationFieldsFragment,
  type TypedDocumentString,
} from '../generated.js';

interface GraphQLResponse<TResult> {
  data?: TResult | null;
  errors?: readonly { message: string; extensions?: { code?: string } }[];
}

/** What the server sends on a graphql-transport-ws socket (the messages this page uses). */
type ServerMessage<TResult> =
  | { type: 'connection_ack' }
  | { type: 'ping' }
  | { type: 'next'; id: string; payload: GraphQLResponse<TResult> }
  | { type: 'error'; id: string; payload: GraphQLResponse<TResult>['errors'] }
  | { type: 'complete'; id: string };

/** One Error for a response's errors, each message followed by its `extensions.code`. */
function errorOf(errors: NonNullable<GraphQLResponse<unknown>['errors']>): Error {
  const messages = errors.map((e) =>
    e.extensions?.code === undefined ? e.message : `${e.message} (${e.extensions.code})`,
  );
  return new Error(messages.join('; '));
}

/** Runs a query or mutation over HTTP; its variables and result are typed by `document`. */
async function request<TResult, TVariables>(
  gateway: string,
  token: string,
  document: TypedDocumentString<TResult, TVariables>,
  variables: NoInfer<TVariables>,
): Promise<TResult> {
  const res = await fetch(gateway, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query: document.toString(), variables }),
  });
  const body = (await res.json()) as GraphQLResponse<TResult>;
  if (body.errors !== undefined && body.errors.length > 0) throw errorOf(body.errors);
  if (body.data == null) throw new Error(`HTTP ${res.status} without data`);
  return body.data;
}

interface SubscriptionHandlers<TResult> {
  /** The server acknowledged the connection and the subscription is sent. */
  onLive(): void;
  onNext(data: TResult): void;
  /** The subscription ended for good (refused, failed, or completed by the server). */
  onEnd(error: Error | null): void;
  /** The socket dropped; the page reconnects after `delayMs`. */
  onRetry(delayMs: number): void;
}

// graphql-ws close codes after which reconnecting cannot help.
const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4406, 4409, 4429, 4499]);

/**
 * Subscribes over WebSocket with graphql-transport-ws, reconnecting (1 s, 2 s, … 30 s) when the
 * socket drops. The feed starts each subscription with the current state, so nothing is lost
 * across a reconnect. Returns a function that ends the subscription.
 */
function subscribe<TResult, TVariables>(
  gateway: string,
  token: string,
  document: TypedDocumentString<TResult, TVariables>,
  variables: NoInfer<TVariables>,
  handlers: SubscriptionHandlers<TResult>,
): () => void {
  const url = new URL(gateway);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  let socket: WebSocket | null = null;
  let stopped = false;
  let failures = 0;

  const send = (message: object) => socket?.send(JSON.stringify(message));
  const end = (error: Error | null) => {
    stopped = true;
    socket?.close(1000, 'done');
    handlers.onEnd(error);
  };

  const connect = () => {
    const ws = new WebSocket(url, 'graphql-transport-ws');
    socket = ws;
    ws.addEventListener('open', () => {
      send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
    });
    ws.addEventListener('message', (event: MessageEvent<string>) => {
      const message = JSON.parse(event.data) as ServerMessage<TResult>;
      switch (message.type) {
        case 'connection_ack':
          failures = 0;
          send({ id: '1', type: 'subscribe', payload: { query: document.toString(), variables } });
          handlers.onLive();
          break;
        case 'ping':
          send({ type: 'pong' });
          break;
        case 'next':
          if (message.payload.errors !== undefined && message.payload.errors.length > 0) {
            end(errorOf(message.payload.errors));
          } else if (message.payload.data != null) {
            handlers.onNext(message.payload.data);
          }
          break;
        case 'error':
          end(errorOf(message.payload ?? []));
          break;
        case 'complete':
          end(null);
          break;
      }
    });
    ws.addEventListener('close', (event) => {
      if (stopped || socket !== ws) return;
      if (FATAL_CLOSE_CODES.has(event.code)) {
        end(new Error(`${event.reason || 'closed'} (close code ${event.code})`));
        return;
      }
      const delayMs = Math.min(30_000, 1_000 * 2 ** failures++);
      handlers.onRetry(delayMs);
      setTimeout(() => {
        if (!stopped) connect();
      }, delayMs);
    });
  };

  connect();
  return () => {
    stopped = true;
    socket?.close(1000, 'done');
  };
}

/** The rows of the table, by notification id. */
function createNotificationTable(body: HTMLTableSectionElement) {
  const rows = new Map<string, HTMLTableRowElement>();

  const cell = (row: HTMLTableRowElement, name: string): HTMLTableCellElement => {
    const existing = row.querySelector<HTMLTableCellElement>(`td.${name}`);
    if (existing !== null) return existing;
    const td = row.insertCell();
    td.className = name;
    return td;
  };

  return {
    /**
     * Adds a notification or updates its row in place. Older versions than the one shown are
     * ignored: the query's page and the feed's first events may overlap.
     */
    upsert(n: NotificationFieldsFragment, position: 'top' | 'bottom'): void {
      let row = rows.get(n.id);
      if (row !== undefined && Number(row.dataset.version) > n.version) return;
      if (row === undefined) {
        row = document.createElement('tr');
        row.dataset.id = n.id;
        for (const name of ['id', 'title', 'channel', 'status', 'updated']) cell(row, name);
        if (position === 'top') body.prepend(row);
        else body.append(row);
        rows.set(n.id, row);
      }
      row.dataset.status = n.status;
      row.dataset.version = String(n.version);
      // textContent, never innerHTML: titles are whatever the sender wrote.
      cell(row, 'id').textContent = n.id;
      cell(row, 'title').textContent = n.content.title ?? n.content.subject ?? '';
      cell(row, 'channel').textContent = n.channel;
      cell(row, 'status').textContent = n.status;
      cell(row, 'updated').textContent = new Date(n.updatedAt).toLocaleTimeString();
    },
  };
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

function start(): void {
  const form = element<HTMLFormElement>('connect');
  const state = element<HTMLElement>('state');
  const unread = element<HTMLElement>('unread');
  const gatewayInput = element<HTMLInputElement>('gateway');
  const tokenInput = element<HTMLInputElement>('token');
  let stop: (() => void) | null = null;
  // Bumped by every connect, so a slower earlier one cannot take over the table.
  let generation = 0;

  const show = (name: 'connecting' | 'live' | 'reconnecting' | 'ended' | 'error', text: string) => {
    state.dataset.state = name;
    state.textContent = text;
  };

  const connect = async (gateway: string, token: string) => {
    stop?.();
    stop = null;
    const current = ++generation;
    const body = element<HTMLTableSectionElement>('notifications');
    body.replaceChildren();
    const table = createNotificationTable(body);
    show('connecting', `Connecting to ${gateway}…`);
    try {
      const { me } = await request(gateway, token, MyNotificationsDocument, { first: 50 });
      if (current !== generation) return;
      unread.textContent = String(me.unreadCount);
      for (const edge of me.notifications.edges) table.upsert(edge.node, 'bottom');
    } catch (err) {
      if (current !== generation) return;
      show('error', `Could not load notifications: ${(err as Error).message}`);
      return;
    }
    stop = subscribe(
      gateway,
      token,
      MyFeedDocument,
      {},
      {
        onLive: () => show('live', 'Live'),
        onNext: (data) => table.upsert(data.myNotifications, 'top'),
        onRetry: (delayMs) => show('reconnecting', `Disconnected; retrying in ${delayMs / 1000} s`),
        onEnd: (error) =>
          error === null
            ? show('ended', 'The feed ended')
            : show('error', `The feed stopped: ${error.message}`),
      },
    );
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void connect(gatewayInput.value, tokenInput.value);
  });

  // ?gateway=…&token=… connects at once; otherwise the form does.
  const params = new URLSearchParams(location.search);
  const gateway = params.get('gateway');
  const token = params.get('token');
  if (gateway !== null) gatewayInput.value = gateway;
  if (token !== null) tokenInput.value = token;
  if (gateway !== null && token !== null) void connect(gateway, token);
}

start();
