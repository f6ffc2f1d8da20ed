/**
 * classifySmtpError over errors shaped like the ones nodemailer reports (code, responseCode,
 * command, response, originalCode).
 */
import { describe, expect, it } from 'vitest';
import { PermanentDeliveryError, TransientDeliveryError } from '../../src/domain/errors.js';
import { classifySmtpError } from '../../src/providers/smtp.js';

interface Fields {
  code?: string;
  originalCode?: string;
  timeoutType?: string;
  command?: string;
  response?: string;
  responseCode?: number;
}

/** An Error carrying nodemailer's fields; the message gets the reply appended, as nodemailer does. */
function smtpError(message: string, fields: Fields = {}): Error {
  const full = fields.response ? `${message}: ${fields.response}` : message;
  return Object.assign(new Error(full), fields);
}

function reply(code: string, command: string, response: string): Error {
  const responseCode = Number(response.slice(0, 3));
  return smtpError('Command failed', { code, command, response, responseCode });
}

describe('classifySmtpError', () => {
  it.each([
    ['RCPT TO', '550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown'],
    ['RCPT TO', '551 5.1.6 User not local'],
    ['RCPT TO', '553 5.1.3 Bad recipient address syntax'],
    ['RCPT TO', '501 5.1.3 Invalid address'],
    ['RCPT TO', '554 5.7.1 Relay access denied'],
    ['DATA', '554 5.6.0 Message rejected as spam'],
    ['DATA', '550 5.7.1 Message content rejected'],
  ])('is permanent for a 5xx to %s (%s)', (command, response) => {
    const err = classifySmtpError('mail', reply('EENVELOPE', command, response));
    expect(err).toBeInstanceOf(PermanentDeliveryError);
    expect(err.message).toBe(`mail: SMTP ${response.slice(0, 3)} to ${command}: ${response}`);
  });

  it('is permanent for 552 to MAIL FROM (the message is too big)', () => {
    const err = classifySmtpError('mail', reply('EENVELOPE', 'MAIL FROM', '552 5.3.4 Too big'));
    expect(err).toBeInstanceOf(PermanentDeliveryError);
  });

  it.each([
    ['RCPT TO', '450 4.2.0 Mailbox busy'],
    ['RCPT TO', '451 4.3.0 Try again later'],
    ['RCPT TO', '452 4.5.3 Too many recipients'],
    ['DATA', '451 4.7.1 Greylisted'],
    ['MAIL FROM', '421 4.7.0 Closing connection'],
    ['CONN', '421 Service not available'],
    ['RCPT TO', '503 5.5.1 Bad sequence of commands'],
    ['EHLO', '554 5.7.1 Go away'],
    ['CONN', '554 No SMTP service here'],
  ])('is transient for %s answered with %s', (command, response) => {
    const err = classifySmtpError('mail', reply('EENVELOPE', command, response));
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toContain(`mail: SMTP ${response.slice(0, 3)} to ${command}: ${response}`);
  });

  it('is transient, blaming the sender configuration, for a 5xx to MAIL FROM', () => {
    const err = classifySmtpError(
      'mail',
      reply('EENVELOPE', 'MAIL FROM', '553 5.7.1 Sender address rejected: not owned by user'),
    );
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toMatch(/^mail: the server refused the sender \(SMTP 553 to MAIL FROM: /);
  });

  it('is transient, blaming the credentials, when authentication fails', () => {
    const err = classifySmtpError(
      'mail',
      smtpError('Invalid login', {
        code: 'EAUTH',
        command: 'AUTH PLAIN',
        response: '535 5.7.8 Authentication credentials invalid',
        responseCode: 535,
      }),
    );
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toBe(
      "mail: authentication failed (SMTP 535 to AUTH PLAIN: 535 5.7.8 Authentication credentials invalid); the provider's credentials are wrong or missing, not the notification",
    );
  });

  it('is transient when credentials are missing', () => {
    const err = classifySmtpError('mail', smtpError('Missing credentials', { code: 'ENOAUTH' }));
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toMatch(/^mail: authentication failed \(Missing credentials\)/);
  });

  it.each([
    [{ code: 'ETLS' }, 'Error initiating TLS - socket hang up'],
    [
      {
        code: 'ETLS',
        command: 'STARTTLS',
        response: '454 4.7.0 TLS not available',
        responseCode: 454,
      },
      'Error upgrading connection with STARTTLS',
    ],
    [{ code: 'ESOCKET', originalCode: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'self-signed certificate'],
    [
      { code: 'ESOCKET', originalCode: 'ERR_TLS_CERT_ALTNAME_INVALID' },
      "Hostname/IP does not match certificate's altnames",
    ],
  ] as const)('is transient for a TLS failure (%o)', (fields, message) => {
    const err = classifySmtpError('mail', smtpError(message, fields));
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toMatch(/^mail: TLS failed \(/);
  });

  it.each([
    [
      { code: 'ESOCKET', originalCode: 'ECONNREFUSED' },
      'connect ECONNREFUSED 127.0.0.1:25',
      'ESOCKET ECONNREFUSED',
    ],
    [{ code: 'ESOCKET', originalCode: 'ECONNRESET' }, 'read ECONNRESET', 'ESOCKET ECONNRESET'],
    [
      { code: 'ETIMEDOUT', timeoutType: 'GREETING_TIMEOUT' },
      'Greeting never received',
      'ETIMEDOUT GREETING_TIMEOUT',
    ],
    [{ code: 'ETIMEDOUT', timeoutType: 'SOCKET_TIMEOUT' }, 'Timeout', 'ETIMEDOUT SOCKET_TIMEOUT'],
    [
      { code: 'EDNS', originalCode: 'ENOTFOUND' },
      'getaddrinfo ENOTFOUND smtp.invalid',
      'EDNS ENOTFOUND',
    ],
    [{ code: 'ECONNECTION' }, 'Connection closed unexpectedly', 'ECONNECTION'],
    [{ code: 'ECONNREFUSED' }, 'connect ECONNREFUSED', 'ECONNREFUSED'],
  ] as const)('is transient for a connection failure (%o)', (fields, message, detail) => {
    const err = classifySmtpError('mail', smtpError(message, fields));
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toBe(`mail: cannot reach the SMTP server (${detail}): ${message}`);
  });

  it('is transient for an abort', () => {
    const err = classifySmtpError('mail', smtpError('Message sending aborted', { code: 'EABORT' }));
    expect(err).toBeInstanceOf(TransientDeliveryError);
    expect(err.message).toBe('mail: delivery aborted');
  });

  it('is permanent for an envelope nodemailer refuses without asking the server', () => {
    const err = classifySmtpError(
      'mail',
      smtpError('No recipients defined', { code: 'EENVELOPE', command: 'API' }),
    );
    expect(err).toBeInstanceOf(PermanentDeliveryError);
    expect(err.message).toBe('mail: No recipients defined');
  });

  it('is transient for anything it does not recognise', () => {
    expect(classifySmtpError('mail', new Error('boom'))).toBeInstanceOf(TransientDeliveryError);
    expect(classifySmtpError('mail', 'a string').message).toBe('mail: a string');
    expect(classifySmtpError('mail', undefined)).toBeInstanceOf(TransientDeliveryError);
  });

  it('passes delivery errors through unchanged', () => {
    const permanent = new PermanentDeliveryError('mail: already decided');
    expect(classifySmtpError('mail', permanent)).toBe(permanent);
  });

  it('keeps the cause and puts a multi-line reply on one line', () => {
    const cause = reply(
      'EENVELOPE',
      'RCPT TO',
      '550-5.1.1 The email account does not exist.\r\n550 5.1.1 Please check the address',
    );
    const err = classifySmtpError('mail', cause);
    expect(err.cause).toBe(cause);
    expect(err.message).toBe(
      'mail: SMTP 550 to RCPT TO: 550-5.1.1 The email account does not exist. 550 5.1.1 Please check the address',
    );
  });
});
