/**
 * The `smtp` provider: delivers email notifications through an SMTP relay over a pooled nodemailer
 * transport (STARTTLS or implicit TLS, optional login). Every message carries its notification id
 * in `X-Herald-Notification-Id` and in a Message-ID derived from it, so a retried delivery is
 * recognisable downstream. `classifySmtpError` is the one place SMTP failures become transient
 * or permanent delivery errors.
 */
import nodemailer from 'nodemailer';
import type { SMTPPoolOptions } from 'nodemailer';
import { z } from 'zod';
import { PermanentDeliveryError, TransientDeliveryError } from '../domain/errors.js';
import type { Notification } from '../domain/notification.js';
import type { DeliveryResult, Provider } from '../domain/ports.js';
import { echoesOf, withoutEchoes } from './redact.js';

export const smtpProviderConfig = z
  .object({
    type: z.literal('smtp'),
    name: z.string().min(1).default('smtp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    /** Implicit TLS from the first byte (usually port 465); otherwise STARTTLS when offered. */
    secure: z.boolean().default(false),
    /** Refuse to send unless the server upgrades the connection with STARTTLS. */
    requireTls: z.boolean().default(false),
    tlsRejectUnauthorized: z.boolean().default(true),
    user: z.string().optional(),
    pass: z.string().optional(),
    /** The From header, e.g. `Herald <no-reply@example.com>`. */
    from: z.string().min(1),
    pool: z.boolean().default(true),
    maxConnections: z.number().int().min(1).default(5),
  })
  .strict();

export type SmtpProviderConfig = z.infer<typeof smtpProviderConfig>;

// Bounded well below the attempt timeout a worker gives a provider, so an unreachable or mute relay
// fails the attempt with a reason of its own instead of only an abort.
const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const DNS_TIMEOUT_MS = 10_000;
// Inactivity on a connection in the middle of a command; an idle pooled connection is closed by
// the pool's own idle timeout before this matters.
const SOCKET_TIMEOUT_MS = 60_000;

/** The Message-ID of every attempt at notification `id`: the same one each time it is retried. */
export function smtpMessageId(id: string): string {
  return `<${id}@herald>`;
}

/** Builds the provider; the pooled transport connects lazily, on the first delivery. */
export function createSmtpProvider(config: SmtpProviderConfig): Provider {
  const { name } = config;
  const options: SMTPPoolOptions = {
    host: config.host,
    port: config.port,
    secure: config.secure,
    requireTLS: config.requireTls,
    tls: { rejectUnauthorized: config.tlsRejectUnauthorized },
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    dnsTimeout: DNS_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    maxConnections: config.maxConnections,
    // Content comes from API callers: never let it make the transport read files or fetch URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  };
  if (config.user !== undefined) options.auth = { user: config.user, pass: config.pass };
  // With `pool: false` every delivery opens and closes its own connection (e.g. for a relay that
  // limits messages per connection); both share the options and the message format.
  const transport = config.pool
    ? nodemailer.createTransport({ ...options, pool: true })
    : nodemailer.createTransport(options);

  return {
    name,
    async deliver(notification: Notification, signal: AbortSignal): Promise<DeliveryResult> {
      if (notification.to === null) {
        throw new PermanentDeliveryError(`${name}: the notification has no email address`);
      }
      if (signal.aborted) throw aborted(name, signal);
      const { content } = notification;
      try {
        const info = await untilAborted(
          transport.sendMail({
            from: config.from,
            to: notification.to,
            subject: content.subject,
            text: content.body,
            ...(content.html !== undefined ? { html: content.html } : {}),
            messageId: smtpMessageId(notification.id),
            headers: { 'X-Herald-Notification-Id': notification.id },
            // Lets the transport drop the message from its queue, or close the connection sending
            // it, once the attempt is over: a late send after a retry was scheduled is a duplicate.
            signal,
          }),
          signal,
        );
        return { providerMessageId: info.serverMessageId ?? info.messageId };
      } catch (err) {
        if (signal.aborted) throw aborted(name, signal);
        // Relays quote the recipient (and spam filters the content) in their replies.
        throw withoutEchoes(classifySmtpError(name, err), echoesOf(notification));
      }
    },
    close() {
      // Idle connections end now; one still delivering finishes first. By shutdown the workers
      // have stopped and aborted whatever they gave up on, which closed those connections.
      transport.close();
      return Promise.resolve();
    },
  };
}

function aborted(name: string, signal: AbortSignal): TransientDeliveryError {
  return new TransientDeliveryError(`${name}: delivery aborted`, { cause: signal.reason });
}

/**
 * Settles with `work`, or rejects as soon as `signal` aborts, whichever comes first: the attempt
 * ends promptly even if the transport is slow to notice the abort. A later rejection of `work` is
 * absorbed here.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    void work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The fields nodemailer puts on the errors it reports (see its NodemailerError). */
interface SmtpErrorFields {
  message?: unknown;
  code?: unknown;
  originalCode?: unknown;
  timeoutType?: unknown;
  command?: unknown;
  response?: unknown;
  responseCode?: unknown;
}

const CONNECTION_CODES = new Set([
  'ECONNECTION',
  'ESOCKET',
  'ETIMEDOUT',
  'EDNS',
  'EPROXY',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Turns a failed send into the delivery error the worker acts on. Transient: the relay could not
 * be reached or spoke TLS badly, a 4xx reply (or 503, a session out of step), a 5xx to anything
 * but the recipient or the message (greeting, EHLO, STARTTLS, MAIL FROM: the relay or our
 * configuration, not this notification), failed authentication (a provider misconfiguration), and
 * anything unrecognised. Permanent: a 5xx reply to RCPT TO or DATA, a 552 to MAIL FROM (the
 * message is too big), and an envelope or message nodemailer itself refuses to send. Messages
 * name the provider and carry the SMTP code and reply, never the message content.
 */
export function classifySmtpError(
  provider: string,
  err: unknown,
): TransientDeliveryError | PermanentDeliveryError {
  if (err instanceof TransientDeliveryError || err instanceof PermanentDeliveryError) return err;
  const e: SmtpErrorFields = typeof err === 'object' && err !== null ? err : {};
  const code = typeof e.code === 'string' ? e.code : undefined;
  const originalCode = typeof e.originalCode === 'string' ? e.originalCode : undefined;
  const command = typeof e.command === 'string' ? e.command : undefined;
  const responseCode = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const reply = typeof e.response === 'string' ? oneLine(e.response) : undefined;
  const message = oneLine(typeof e.message === 'string' ? e.message : String(err));
  const options = { cause: err };
  const smtpReply =
    responseCode !== undefined
      ? `SMTP ${responseCode}${command ? ` to ${command}` : ''}: ${reply ?? message}`
      : undefined;

  if (code === 'EAUTH' || code === 'ENOAUTH') {
    return new TransientDeliveryError(
      `${provider}: authentication failed (${smtpReply ?? message}); the provider's credentials ` +
        'are wrong or missing, not the notification',
      options,
    );
  }
  if (code === 'EABORT')
    return new TransientDeliveryError(`${provider}: delivery aborted`, options);
  if (code === 'ETLS' || code === 'EREQUIRETLS' || isTlsCode(originalCode)) {
    return new TransientDeliveryError(`${provider}: TLS failed (${smtpReply ?? message})`, options);
  }
  if (smtpReply !== undefined && responseCode !== undefined) {
    if (isPermanentReply(responseCode, command)) {
      return new PermanentDeliveryError(`${provider}: ${smtpReply}`, options);
    }
    if (command === 'MAIL FROM' && responseCode >= 500) {
      return new TransientDeliveryError(
        `${provider}: the server refused the sender (${smtpReply}); check the provider's from address and account`,
        options,
      );
    }
    return new TransientDeliveryError(`${provider}: ${smtpReply}`, options);
  }
  if (code === 'EENVELOPE' || code === 'EMESSAGE') {
    // No reply: nodemailer refused to send, e.g. an address it cannot use. Sending again will not
    // change that.
    return new PermanentDeliveryError(`${provider}: ${message}`, options);
  }
  if (code !== undefined && CONNECTION_CODES.has(code)) {
    const detail = [code, originalCode, e.timeoutType].filter((x) => typeof x === 'string');
    return new TransientDeliveryError(
      `${provider}: cannot reach the SMTP server (${detail.join(' ')}): ${message}`,
      options,
    );
  }
  return new TransientDeliveryError(`${provider}: ${message}`, options);
}

/** A 5xx that refuses this recipient or this message, rather than the session or the sender. */
function isPermanentReply(responseCode: number, command: string | undefined): boolean {
  // 503 is "bad sequence of commands": the session was out of step, the message was not judged.
  if (responseCode < 500 || responseCode >= 600 || responseCode === 503) return false;
  if (command === 'RCPT TO' || command === 'DATA' || command?.startsWith('BDAT')) return true;
  return command === 'MAIL FROM' && responseCode === 552;
}

/** Node's TLS and certificate error codes, which an implicit-TLS socket reports as ESOCKET. */
function isTlsCode(code: string | undefined): boolean {
  return code !== undefined && /CERT|TLS|SSL/.test(code);
}

/** Multi-line SMTP replies on one line, bounded, so they fit a log field and `lastError`. */
function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}
