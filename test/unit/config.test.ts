import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('points at the local services when nothing is set', () => {
    const c = loadConfig({});
    expect(c.database.url).toBe('postgres://postgres@127.0.0.1:5432/herald');
    expect(c.nats.url).toBe('nats://127.0.0.1:4222');
    expect(c.api).toMatchObject({ h2cPort: 8080, httpPort: 8081 });
    expect(c.worker.channels).toEqual(['email', 'sms', 'push', 'in_app', 'webhook']);
    expect(c.worker.retry).toEqual({ baseMs: 1000, factor: 2, capMs: 300_000, maxAttempts: 6 });
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

  it('rejects an ack wait shorter than the provider timeout', () => {
    expect(() =>
      loadConfig({ HERALD_ACK_WAIT_MS: '5000', HERALD_PROVIDER_TIMEOUT_MS: '8000' }),
    ).toThrow(/HERALD_ACK_WAIT_MS/);
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
