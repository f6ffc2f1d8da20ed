/**
 * A fake SMTP relay for provider tests, built on `smtp-server` and listening on a free loopback
 * port. It records every message it accepts, counts the connections it is given, and can be told
 * to refuse RCPT or DATA with a chosen reply, to stall on them, or to stop listening altogether.
 * STARTTLS (and implicit TLS) use the package's built-in self-signed certificate, so clients must
 * not verify it.
 */
import { SMTPServer } from 'smtp-server';
import type { SMTPServerSession } from 'smtp-server';
import { listenOnFreePort } from '../http-server.js';

/** One message the fake accepted. */
export interface ReceivedMessage {
  /** The envelope sender (MAIL FROM). */
  mailFrom: string;
  /** The envelope recipients (RCPT TO). */
  rcptTo: string[];
  /** Top-level header fields, unfolded; names lower-cased; the first occurrence wins. */
  headers: ReadonlyMap<string, string>;
  subject: string | undefined;
  messageId: string | undefined;
  /** The `X-Herald-Notification-Id` header. */
  notificationId: string | undefined;
  /** Whether any part is text/html, and whether any is text/plain. */
  hasHtml: boolean;
  hasText: boolean;
  /** The user the session authenticated as; undefined without AUTH. */
  user: string | undefined;
  /** Whether the session was encrypted (STARTTLS or implicit TLS) when the message came. */
  secure: boolean;
  raw: string;
}

/** The commands the fake can be told to refuse or stall on. */
export type SmtpStage = 'rcpt' | 'data';

export interface FakeSmtpOptions {
  /** Require AUTH and accept exactly this user and password. */
  auth?: { user: string; pass: string };
  /** Offer STARTTLS (default true); without it, AUTH is allowed in clear text. */
  starttls?: boolean;
  /** TLS from the first byte instead of STARTTLS. */
  implicitTls?: boolean;
}

export interface FakeSmtpServer {
  readonly port: number;
  /** Accepted messages, oldest first. */
  readonly messages: readonly ReceivedMessage[];
  /** TCP connections accepted so far. */
  readonly connectionCount: number;
  /** SMTP sessions open right now. */
  readonly openConnections: number;
  /** Commands the fake is holding without an answer (see `hang`). */
  readonly stalled: number;
  /** From now on, answer `stage` with `code` and `text` instead of accepting. */
  reply(stage: SmtpStage, code: number, text?: string): void;
  /** From now on, never answer `stage`. */
  hang(stage: SmtpStage): void;
  /** Back to accepting everything. */
  accept(): void;
  /**
   * Stops listening and ends every open session, so new connections are refused. Idempotent;
   * also the cleanup.
   */
  stop(): Promise<void>;
}

type Behaviour = { kind: 'reply'; code: number; text: string } | { kind: 'hang' };

/** Starts a fake relay on 127.0.0.1; `stop()` it when done. */
export async function startFakeSmtpServer(options: FakeSmtpOptions = {}): Promise<FakeSmtpServer> {
  const messages: ReceivedMessage[] = [];
  const behaviours = new Map<SmtpStage, Behaviour>();
  const sessions = new Set<string>();
  let connectionCount = 0;
  let stalled = 0;
  let stopped: Promise<void> | undefined;

  // Answers per the configured behaviour; `accept` runs when the stage is not overridden.
  const answer = (stage: SmtpStage, callback: (err?: Error | null) => void, accept: () => void) => {
    const behaviour = behaviours.get(stage);
    if (behaviour === undefined) return accept();
    if (behaviour.kind === 'hang') {
      stalled += 1;
      return;
    }
    callback(Object.assign(new Error(behaviour.text), { responseCode: behaviour.code }));
  };

  const starttls = options.starttls ?? true;
  const server = new SMTPServer({
    secure: options.implicitTls ?? false,
    // An explicit `false` also silences the warning about the built-in test certificate.
    logger: false,
    disableReverseLookup: true,
    authOptional: options.auth === undefined,
    disabledCommands: [...(options.auth ? [] : ['AUTH']), ...(starttls ? [] : ['STARTTLS'])],
    allowInsecureAuth: !starttls,
    onConnect(session, callback) {
      sessions.add(session.id);
      callback();
    },
    onClose(session) {
      sessions.delete(session.id);
    },
    onAuth(auth, _session, callback) {
      const ok =
        options.auth !== undefined &&
        auth.username === options.auth.user &&
        auth.password === options.auth.pass;
      if (ok) callback(null, { user: auth.username });
      else
        callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      answer('rcpt', callback, () => callback());
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        answer('data', callback, () => {
          messages.push(parseMessage(Buffer.concat(chunks).toString('utf8'), session));
          callback(null, `Ok: queued as ${session.id}`);
        });
      });
    },
  });
  // Counted on the listening socket, before any SMTP. Open sessions are tracked through
  // onConnect/onClose instead: after STARTTLS the TLS socket takes over the accepted socket's
  // handle, and the accepted socket object never reports its close.
  server.server.on('connection', () => {
    connectionCount += 1;
  });
  server.on('error', () => {
    // A client vanishing mid-command is routine here (aborted deliveries); the tests assert on
    // what the client sees.
  });

  const port = await listenOnFreePort(server.server);
  return {
    port,
    messages,
    get connectionCount() {
      return connectionCount;
    },
    get openConnections() {
      return sessions.size;
    },
    get stalled() {
      return stalled;
    },
    reply(stage, code, text = `Error ${code}`) {
      behaviours.set(stage, { kind: 'reply', code, text });
    },
    hang(stage) {
      behaviours.set(stage, { kind: 'hang' });
    },
    accept() {
      behaviours.clear();
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Without this the server would wait out its close timeout for pooled clients that keep
        // their connections open; they see the session end, as with a relay restart.
        for (const connection of server.connections) connection.close();
      });
      return stopped;
    },
  };
}

function parseMessage(raw: string, session: SMTPServerSession): ReceivedMessage {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  const headers = new Map<string, string>();
  // Unfold continuation lines (RFC 5322 2.2.3) before splitting name from value.
  for (const line of head.replace(/\r\n(?=[ \t])/g, '').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(key)) headers.set(key, line.slice(colon + 1).trim());
  }
  return {
    mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
    headers,
    subject: headers.get('subject'),
    messageId: headers.get('message-id'),
    notificationId: headers.get('x-herald-notification-id'),
    hasHtml: /^content-type:\s*text\/html/im.test(raw),
    hasText: /^content-type:\s*text\/plain/im.test(raw),
    user: typeof session.user === 'string' ? session.user : undefined,
    secure: session.secure,
    raw,
  };
}
