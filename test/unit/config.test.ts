import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, portVariables } from '../../src/config.js';

describe('loadConfig', () => {
  it('points at the local services when nothing is set', () => {
    const c = loadConfig({});
    expect(c.database.url).toBe('postgres://postgres@127.0.0.1:5432/herald');
    expect(c.nats.url).toBe('nats://127.0.0.1:4222');
    expect(c.api).toMatchObject({ h2cPort: 8080, httpPort: 8081 });
    expect(c.worker.channels).toEqual(['email', 'sms', 'push', 'in_app', 'webhook']);
    expect(c.worker.retry).toEqual({ baseMs: 1000, factor: 2, capMs: 300_000, maxAttempts: 6 });
  });

  it('reads the slow-client timeouts, refusing a headers timeout longer than the request timeout', () => {
    expect(loadConfig({}).api).toMatchObject({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      h2cIdleTimeoutMs: 60_000,
    });
    expect(() =>
      loadConfig({
        HERALD_HTTP_HEADERS_TIMEOUT_MS: '5000',
        HERALD_HTTP_REQUEST_TIMEOUT_MS: '4000',
      }),
    ).toThrow(/HERALD_HTTP_HEADERS_TIMEOUT_MS: must not exceed HERALD_HTTP_REQUEST_TIMEOUT_MS/);
  });

  it('reads the api process count: 1 unless set, 1 to 64', () => {
    expect(loadConfig({}).api.processes).toBe(1);
    expect(loadConfig({ HERALD_API_PROCESSES: '2' }).api.processes).toBe(2);
    for (const bad of ['0', '65', '1.5', 'two']) {
      expect(() => loadConfig({ HERALD_API_PROCESSES: bad })).toThrow(/HERALD_API_PROCESSES/);
    }
  });

  it('reads the unary gRPC fast path: on unless set to off', () => {
    expect(loadConfig({}).api.grpcFastPath).toBe(true);
    expect(loadConfig({ HERALD_GRPC_FAST_PATH: 'off' }).api.grpcFastPath).toBe(false);
    expect(() => loadConfig({ HERALD_GRPC_FAST_PATH: 'no' })).toThrow(/HERALD_GRPC_FAST_PATH/);
  });

  it('reads the default quiet hours: 22:00–08:00 unless set, off, or another window', () => {
    expect(loadConfig({}).defaultQuietHours).toEqual({
      enabled: true,
      window: { start: 22 * 60, end: 8 * 60 },
    });
    expect(loadConfig({ HERALD_DEFAULT_QUIET_HOURS: 'off' }).defaultQuietHours).toEqual({
      enabled: false,
    });
    expect(loadConfig({ HERALD_DEFAULT_QUIET_HOURS: '21:30-07:15' }).defaultQuietHours).toEqual({
      enabled: true,
      window: { start: 21 * 60 + 30, end: 7 * 60 + 15 },
    });
    for (const bad of ['22:00', '22:00-22:00', '25:00-08:00', '22:00-08:00-09:00']) {
      expect(() => loadConfig({ HERALD_DEFAULT_QUIET_HOURS: bad }), bad).toThrow(
        /HERALD_DEFAULT_QUIET_HOURS/,
      );
    }
  });

  it('lists every bad variable when several are invalid', () => {
    let error: unknown;
    try {
      loadConfig({
        HERALD_API_H2C_PORT: 'eighty',
        HERALD_WORKER_CHANNELS: 'email,fax',
        HERALD_ENV: 'staging',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toContain('HERALD_API_H2C_PORT');
    expect(problems).toContain('HERALD_WORKER_CHANNELS');
    expect(problems).toContain('HERALD_ENV');
  });

  it('reads providers per channel, substituting ${VAR} from the environment', () => {
    const config = loadConfig({
      HERALD_PROVIDERS: JSON.stringify({
        email: [
          {
            type: 'smtp',
            name: 'primary',
            host: 'smtp.example.com',
            from: 'a@example.com',
            pass: '${SMTP_PASS}',
            breaker: { failures: 3 },
          },
          { type: 'log', name: 'fallback' },
        ],
      }),
      SMTP_PASS: 'secret',
    });
    const email = config.providers.email ?? [];
    expect(email.map((e) => [e.type, e.options.name])).toEqual([
      ['smtp', 'primary'],
      ['log', 'fallback'],
    ]);
    expect(email[0]?.options.pass).toBe('secret');
    expect(email[0]?.breaker).toEqual({ failures: 3 });
  });

  it('reads worker concurrency for all channels or per channel', () => {
    expect(loadConfig({}).worker.concurrency.email).toBe(256);
    expect(loadConfig({ HERALD_WORKER_CONCURRENCY: '32' }).worker.concurrency.sms).toBe(32);
    const mixed = loadConfig({ HERALD_WORKER_CONCURRENCY: 'email=64, sms=8, 100' }).worker;
    expect(mixed.concurrency).toEqual({ email: 64, sms: 8, push: 100, in_app: 100, webhook: 100 });
    expect(() => loadConfig({ HERALD_WORKER_CONCURRENCY: 'fax=3' })).toThrow(
      /HERALD_WORKER_CONCURRENCY: "fax=3" is not a count/,
    );
    expect(() => loadConfig({ HERALD_WORKER_CONCURRENCY: '0' })).toThrow(
      /HERALD_WORKER_CONCURRENCY/,
    );
  });

  it('names every bad provider setting with its path', () => {
    let problems = '';
    try {
      loadConfig({
        HERALD_PROVIDERS: JSON.stringify({
          email: [{ type: 'twilio' }, { type: 'smtp', host: '', from: 'a@b.c', port: 0 }],
          sms: [],
          fax: [{ type: 'log' }],
          push: [
            {
              type: 'fcm',
              projectId: 'p',
              clientEmail: 'e',
              privateKey: '${MISSING_KEY}',
              concurrency: 0,
            },
          ],
        }),
      });
    } catch (err) {
      problems = (err as Error).message;
    }
    expect(problems).toContain(
      'HERALD_PROVIDERS.email[0].type: must be one of smtp, log for email',
    );
    expect(problems).toContain('HERALD_PROVIDERS.email[1].host');
    expect(problems).toContain('HERALD_PROVIDERS.email[1].port');
    expect(problems).toContain('HERALD_PROVIDERS.sms: must be a non-empty list');
    expect(problems).toContain('HERALD_PROVIDERS.fax: unknown channel');
    expect(problems).toContain('environment variable MISSING_KEY is not set');
    expect(problems).toContain('HERALD_PROVIDERS.push[0].concurrency');
  });

  it('reports an unset ${VAR} once, not again as the empty value standing in for it', () => {
    let problems: string[] = [];
    try {
      loadConfig({
        HERALD_PROVIDERS: JSON.stringify({
          webhook: [{ type: 'webhook', secret: '${WEBHOOK_SECRET}', url: 'not a url' }],
        }),
      });
    } catch (err) {
      problems = (err as Error).message.split('\n');
    }
    expect(problems.filter((p) => p.includes('webhook[0].secret'))).toEqual([
      expect.stringContaining(
        'HERALD_PROVIDERS.webhook[0].secret: environment variable WEBHOOK_SECRET is not set',
      ),
    ]);
    // Other problems of the same provider are still reported.
    expect(problems.some((p) => p.includes('webhook[0].url'))).toBe(true);
  });

  it('rejects providers JSON that does not parse, naming the variable', () => {
    expect(() => loadConfig({ HERALD_PROVIDERS: '{nope' })).toThrow(
      /HERALD_PROVIDERS: not valid JSON/,
    );
    expect(() => loadConfig({ HERALD_PROVIDERS_FILE: '/nonexistent/providers.json' })).toThrow(
      /HERALD_PROVIDERS_FILE: cannot read/,
    );
  });

  it('puts the gateway in production mode with HERALD_ENV or NODE_ENV', () => {
    expect(loadConfig({}).gateway.production).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production' }).gateway.production).toBe(true);
    expect(
      loadConfig({ HERALD_ENV: 'production', HERALD_TOKEN_SECRET: 'x'.repeat(32) }).gateway
        .production,
    ).toBe(true);
  });

  it('denies private webhook addresses in production and allows them elsewhere, unless set', () => {
    const production = { HERALD_ENV: 'production', HERALD_TOKEN_SECRET: 'x'.repeat(32) };
    expect(loadConfig(production).webhookPrivateAddresses).toBe('deny');
    expect(loadConfig({}).webhookPrivateAddresses).toBe('allow');
    expect(loadConfig({ HERALD_ENV: 'test' }).webhookPrivateAddresses).toBe('allow');
    expect(
      loadConfig({ ...production, HERALD_WEBHOOK_PRIVATE_ADDRESSES: 'allow' })
        .webhookPrivateAddresses,
    ).toBe('allow');
    expect(loadConfig({ HERALD_WEBHOOK_PRIVATE_ADDRESSES: 'deny' }).webhookPrivateAddresses).toBe(
      'deny',
    );
    expect(() => loadConfig({ HERALD_WEBHOOK_PRIVATE_ADDRESSES: 'off' })).toThrow(
      /HERALD_WEBHOOK_PRIVATE_ADDRESSES/,
    );
  });

  it('ignores the crash hook outside the test environment', () => {
    expect(loadConfig({ HERALD_TEST_CRASH_AT: 'after-claim' }).worker.crashAt).toBe('');
    expect(
      loadConfig({ HERALD_ENV: 'test', HERALD_TEST_CRASH_AT: 'after-claim' }).worker.crashAt,
    ).toBe('after-claim');
  });

  it('ignores variables that are not Herald settings when reading the environment', () => {
    expect(loadConfig({ PATH: '/bin', HOME: '/root' }).env).toBe('development');
  });
});

describe('portVariables', () => {
  it('names the variables set to a port, every one when several share it', () => {
    const config = loadConfig({ HERALD_ADMIN_PORT: '9000', HERALD_GATEWAY_PORT: '9000' });

    expect(portVariables(config, 8080)).toEqual(['HERALD_API_H2C_PORT']);
    expect(portVariables(config, 8081)).toEqual(['HERALD_API_HTTP_PORT']);
    expect(portVariables(config, 9000)).toEqual(['HERALD_ADMIN_PORT', 'HERALD_GATEWAY_PORT']);
    expect(portVariables(config, 1234)).toEqual([]);
  });
});
