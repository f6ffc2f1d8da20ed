import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/domain/ports.js';
import { createLogger, warnThrottled, withThrottledWarnings } from '../../src/logger.js';

/** A logger at `trace` whose lines are collected. */
function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger({ level: 'trace', role: 'test', destination }), lines };
}

const SECRETS = {
  to: 'ada@example.com',
  body: 'secret-body-1',
  metadata: 'secret-meta-1',
  apiKey: 'hk_0123456789ab_key-secret',
  bearer: 'Bearer hk_0123456789ab_header-secret',
  cookie: 'session=cookie-secret',
  password: 'password-secret',
  pass: 'smtp-pass-secret',
  secret: 'webhook-secret',
  token: 'user-token-secret',
  authToken: 'twilio-token-secret',
  privateKey: '-----BEGIN PRIVATE KEY-----MIIEv',
  detail: 'Failing row contains (ada@example.com)',
};

describe('createLogger', () => {
  it('redacts recipients, content and secrets at the top level and one level down', () => {
    const { logger, lines } = capture();

    logger.info(
      {
        to: SECRETS.to,
        content: { body: SECRETS.body },
        metadata: { note: SECRETS.metadata },
        apiKey: SECRETS.apiKey,
        authorization: SECRETS.bearer,
        password: SECRETS.password,
        token: SECRETS.token,
        provider: { pass: SECRETS.pass, secret: SECRETS.secret, authToken: SECRETS.authToken },
        credentials: { privateKey: SECRETS.privateKey },
        notification: { to: SECRETS.to },
        notificationId: 'n-1',
      },
      'sent',
    );

    const line = lines.join('');
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(line, name).not.toContain(value);
    }
    expect(JSON.parse(line)).toMatchObject({
      to: '[redacted]',
      provider: { pass: '[redacted]' },
      notificationId: 'n-1',
      msg: 'sent',
    });
  });

  it('redacts the authorization and cookie headers of a logged request', () => {
    const { logger, lines } = capture();

    logger.warn(
      {
        req: { method: 'POST', headers: { authorization: SECRETS.bearer, cookie: SECRETS.cookie } },
      },
      'refused',
    );
    logger.warn({ headers: { authorization: SECRETS.bearer } }, 'refused');

    const text = lines.join('');
    expect(text).not.toContain('header-secret');
    expect(text).not.toContain('cookie-secret');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ req: { method: 'POST' } });
  });

  it('keeps an error’s message but not PostgreSQL’s detail quoting a failing row', () => {
    const { logger, lines } = capture();
    const cause = Object.assign(new Error('null value in column "channel"'), {
      code: '23502',
      detail: SECRETS.detail,
    });

    logger.error({ err: cause }, 'unexpected error');
    logger.error({ err: new Error('insert failed', { cause }) }, 'unexpected error');

    const text = lines.join('');
    expect(text).not.toContain(SECRETS.to);
    expect(text).toContain('null value in column');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ err: { code: '23502' } });
  });
});

describe('warnThrottled', () => {
  /** A logger that records its warnings, and a clock the test moves. */
  function recorder() {
    const warnings: { fields: object; msg: string | undefined }[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (fields, msg) => warnings.push({ fields, msg }),
      error: () => undefined,
    };
    const clock = { t: 1_000_000 };
    const warn = (fields: object, msg: string) =>
      warnThrottled(logger, fields, msg, 5_000, () => clock.t);
    return { warnings, clock, warn, logger };
  }

  it('logs the first warning at once and counts the same one within the interval', () => {
    const { warnings, clock, warn } = recorder();
    for (let i = 0; i < 100; i++) {
      warn({ i }, 'database unavailable');
      clock.t += 10;
    }
    expect(warnings).toEqual([{ fields: { i: 0 }, msg: 'database unavailable' }]);

    clock.t += 5_000;
    warn({ i: 100 }, 'database unavailable');

    expect(warnings).toEqual([
      { fields: { i: 0 }, msg: 'database unavailable' },
      { fields: { i: 100, suppressed: 99 }, msg: 'database unavailable' },
    ]);
  });

  it('throttles each message, and each logger, on its own', () => {
    const a = recorder();
    const b = recorder();
    a.warn({}, 'database unavailable');
    a.warn({}, 'claim failed; will retry');
    a.warn({}, 'database unavailable');
    b.warn({}, 'database unavailable');

    expect(a.warnings.map((w) => w.msg)).toEqual([
      'database unavailable',
      'claim failed; will retry',
    ]);
    expect(b.warnings.map((w) => w.msg)).toEqual(['database unavailable']);
  });

  it('withThrottledWarnings throttles warnings and passes everything else through', () => {
    const { warnings, logger } = recorder();
    const infos: string[] = [];
    const wrapped = withThrottledWarnings({ ...logger, info: (_, msg) => infos.push(msg ?? '') });
    for (let i = 0; i < 10; i++) {
      wrapped.warn({ i }, 'publish failed; the outbox sweep will publish it');
      wrapped.info({ i }, 'dead letters replayed');
    }

    expect(warnings).toHaveLength(1);
    expect(infos).toHaveLength(10);
  });
});
