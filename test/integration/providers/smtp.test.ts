/**
 * The SMTP provider against a fake relay (smtp-server) on loopback: what arrives on the wire, how
 * each kind of failure is classified, aborts, pooling and close.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../../src/domain/errors.js';
import type { Notification } from '../../../src/domain/notification.js';
import type { Provider } from '../../../src/domain/ports.js';
import { createSmtpProvider, smtpProviderConfig } from '../../../src/providers/smtp.js';
import { createCleanups } from '../../support/cleanups.js';
import { startFakeSmtpServer } from '../../support/fakes/smtp.js';
import type { FakeSmtpOptions, FakeSmtpServer } from '../../support/fakes/smtp.js';
import { draftNotification } from '../../support/fixtures.js';

const credentials = { user: 'herald', pass: 's3cret' };
const cleanups = createCleanups();
afterEach(() => cleanups.runAll());

async function startRelay(
  options: FakeSmtpOptions = { auth: credentials },
): Promise<FakeSmtpServer> {
  const relay = await startFakeSmtpServer(options);
  cleanups.add(() => relay.stop());
  return relay;
}

/** A provider for `relay`: STARTTLS required, the fake's self-signed certificate accepted. */
function providerFor(relay: FakeSmtpServer, overrides: Record<string, unknown> = {}): Provider {
  const provider = createSmtpProvider(
    smtpProviderConfig.parse({
      type: 'smtp',
      host: '127.0.0.1',
      port: relay.port,
      requireTls: true,
      tlsRejectUnauthorized: false,
      ...credentials,
      from: 'Herald <no-reply@herald.test>',
      ...overrides,
    }),
  );
  cleanups.add(() => provider.close?.());
  return provider;
}

function emailTo(to: string | null, overrides: Partial<Notification> = {}): Notification {
  return draftNotification({
    status: 'PROCESSING',
    attempt: 1,
    to,
    content: { subject: 'Your code', body: 'The code is 424242.' },
    ...overrides,
  });
}

const live = () => new AbortController().signal;

describe('smtp provider', () => {
  it('delivers text and html over STARTTLS with auth', async () => {
    const relay = await startRelay();
    const provider = providerFor(relay);
    const n = emailTo('ada@example.com', {
      content: { subject: 'Welcome', body: 'Hello Ada', html: '<p>Hello <b>Ada</b></p>' },
    });

    const result = await provider.deliver(n, live());

    expect(result.providerMessageId).toBe(`<${n.id}@herald>`);
    expect(relay.messages).toHaveLength(1);
    const [message] = relay.messages;
    expect(message).toMatchObject({
      mailFrom: 'no-reply@herald.test',
      rcptTo: ['ada@example.com'],
      subject: 'Welcome',
      notificationId: n.id,
      messageId: `<${n.id}@herald>`,
      hasHtml: true,
      hasText: true,
      user: 'herald',
      secure: true,
    });
    expect(message?.headers.get('to')).toBe('ada@example.com');
    expect(message?.headers.get('from')).toBe('Herald <no-reply@herald.test>');
  });

  it('sends a text-only message when the notification has no html', async () => {
    const relay = await startRelay();
    await providerFor(relay).deliver(emailTo('ada@example.com'), live());
    expect(relay.messages.map((m) => [m.hasText, m.hasHtml])).toEqual([[true, false]]);
  });

  it('sends the same Message-ID again when a notification is retried', async () => {
    const relay = await startRelay();
    const provider = providerFor(relay);
    const n = emailTo('ada@example.com');
    await provider.deliver(n, live());
    await provider.deliver({ ...n, attempt: 2 }, live());
    expect(relay.messages.map((m) => m.messageId)).toEqual([
      `<${n.id}@herald>`,
      `<${n.id}@herald>`,
    ]);
  });

  it('delivers over implicit TLS when secure is set', async () => {
    const relay = await startRelay({ auth: credentials, implicitTls: true });
    await providerFor(relay, { secure: true, requireTls: false }).deliver(
      emailTo('ada@example.com'),
      live(),
    );
    expect(relay.messages.map((m) => m.secure)).toEqual([true]);
  });

  it('fails transiently, blaming the configuration, when the credentials are wrong', async () => {
    const relay = await startRelay();
    const failure = providerFor(relay, { pass: 'wrong' }).deliver(
      emailTo('ada@example.com'),
      live(),
    );
    await expect(failure).rejects.toBeInstanceOf(TransientDeliveryError);
    await expect(failure).rejects.toThrow(/^smtp: authentication failed .*535.*credentials/);
    expect(relay.messages).toHaveLength(0);
  });

  it('fails transiently when STARTTLS is required and the relay does not offer it', async () => {
    const relay = await startRelay({ auth: credentials, starttls: false });
    const failure = providerFor(relay).deliver(emailTo('ada@example.com'), live());
    await expect(failure).rejects.toBeInstanceOf(TransientDeliveryError);
    await expect(failure).rejects.toThrow(/^smtp: TLS failed/);
    expect(relay.messages).toHaveLength(0);
  });

  it.each([
    { stage: 'rcpt', code: 451, error: TransientDeliveryError },
    { stage: 'data', code: 452, error: TransientDeliveryError },
    { stage: 'rcpt', code: 550, error: PermanentDeliveryError },
    { stage: 'rcpt', code: 501, error: PermanentDeliveryError },
    { stage: 'data', code: 554, error: PermanentDeliveryError },
  ] as const)(
    'fails with $error.name when the relay answers $stage with $code',
    async ({ stage, code, error }) => {
      const relay = await startRelay();
      relay.reply(stage, code, `refused by test (${stage})`);
      const n = emailTo('ada@example.com');

      const failure = providerFor(relay, { name: 'mailer' }).deliver(n, live());

      await expect(failure).rejects.toBeInstanceOf(error);
      const message = await failure.catch((err: Error) => err.message);
      expect(message).toMatch(new RegExp(`^mailer: SMTP ${code} to (RCPT TO|DATA): `));
      expect(message).toContain(`refused by test (${stage})`);
      expect(message).not.toContain(n.content.body);
      expect(relay.messages).toHaveLength(0);
    },
  );

  it('fails transiently when the relay is not listening', async () => {
    const relay = await startRelay();
    await relay.stop();
    const failure = providerFor(relay).deliver(emailTo('ada@example.com'), live());
    await expect(failure).rejects.toBeInstanceOf(TransientDeliveryError);
    await expect(failure).rejects.toThrow(
      /^smtp: cannot reach the SMTP server \(ESOCKET ECONNREFUSED\)/,
    );
  });

  it('fails transiently as soon as the attempt is aborted while the relay stalls', async () => {
    const relay = await startRelay();
    relay.hang('rcpt');
    const provider = providerFor(relay);
    const controller = new AbortController();

    const failure = provider.deliver(emailTo('ada@example.com'), controller.signal);
    // Abort only once the relay is holding RCPT unanswered: nothing but the abort can end this
    // delivery before the socket timeout (longer than the test timeout).
    await expect.poll(() => relay.stalled).toBe(1);
    controller.abort();

    await expect(failure).rejects.toBeInstanceOf(TransientDeliveryError);
    await expect(failure).rejects.toThrow('smtp: delivery aborted');
    // The transport gives up on the message too: the connection carrying it is closed, so it
    // cannot go out late, after the worker has scheduled a retry.
    await expect.poll(() => relay.openConnections).toBe(0);
    expect(relay.messages).toHaveLength(0);
  });

  it('fails transiently without sending when the signal is already aborted', async () => {
    const relay = await startRelay();
    const failure = providerFor(relay).deliver(emailTo('ada@example.com'), AbortSignal.abort());
    await expect(failure).rejects.toBeInstanceOf(TransientDeliveryError);
    expect(relay.connectionCount).toBe(0);
  });

  it('fails permanently without connecting when the notification has no email address', async () => {
    const relay = await startRelay();
    const failure = providerFor(relay).deliver(emailTo(null), live());
    await expect(failure).rejects.toBeInstanceOf(PermanentDeliveryError);
    await expect(failure).rejects.toThrow('smtp: the notification has no email address');
    expect(relay.connectionCount).toBe(0);
  });

  it('reuses pooled connections across deliveries', async () => {
    const relay = await startRelay();
    const provider = providerFor(relay, { maxConnections: 2 });
    const batch = Array.from({ length: 6 }, (_, i) => emailTo(`user${i}@example.com`));

    const late = emailTo('late@example.com');

    await Promise.all(batch.map((n) => provider.deliver(n, live())));
    await provider.deliver(late, live());

    expect(relay.messages.map((m) => m.notificationId).sort()).toEqual(
      [...batch, late].map((n) => n.id).sort(),
    );
    expect(relay.connectionCount).toBeGreaterThanOrEqual(1);
    expect(relay.connectionCount).toBeLessThanOrEqual(2);
  });

  it('opens a connection per delivery when pooling is off', async () => {
    const relay = await startRelay();
    const provider = providerFor(relay, { pool: false });
    await provider.deliver(emailTo('ada@example.com'), live());
    await provider.deliver(emailTo('bob@example.com'), live());
    expect(relay.messages).toHaveLength(2);
    expect(relay.connectionCount).toBe(2);
    await expect.poll(() => relay.openConnections).toBe(0);
  });

  it('keeps using a pooled connection after a refused recipient', async () => {
    const relay = await startRelay();
    // One connection: the next delivery waits for it rather than opening another.
    const provider = providerFor(relay, { maxConnections: 1 });
    relay.reply('rcpt', 550, 'no such user');
    await expect(provider.deliver(emailTo('nobody@example.com'), live())).rejects.toBeInstanceOf(
      PermanentDeliveryError,
    );
    relay.accept();
    await provider.deliver(emailTo('ada@example.com'), live());
    expect(relay.messages.map((m) => m.rcptTo)).toEqual([['ada@example.com']]);
    expect(relay.connectionCount).toBe(1);
  });

  it('close() ends the pooled connections', async () => {
    const relay = await startRelay();
    const provider = providerFor(relay);
    await provider.deliver(emailTo('ada@example.com'), live());
    expect(relay.openConnections).toBe(1);

    await provider.close?.();

    await expect.poll(() => relay.openConnections).toBe(0);
    await expect(provider.deliver(emailTo('ada@example.com'), live())).rejects.toBeInstanceOf(
      TransientDeliveryError,
    );
    expect(relay.connectionCount).toBe(1);
  });
});
