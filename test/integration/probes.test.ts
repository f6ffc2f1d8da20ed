/** /healthz and /readyz of the api's HTTP ports and of a role without the api. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let api: TestHerald;
let worker: TestHerald;

beforeAll(async () => {
  api = await startTestHerald({ roles: ['api'] });
  worker = await startTestHerald({ roles: ['worker'] });
});

afterAll(async () => {
  await api?.stop();
  await worker?.stop();
});

async function probe(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

describe('probes', () => {
  it('answers /healthz and /readyz with both dependencies ok on the api’s HTTP/1.1 port', async () => {
    expect(await probe(`${api.httpUrl}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await probe(`${api.httpUrl}/readyz`)).toEqual({
      status: 200,
      body: {
        ready: true,
        checks: { postgres: 'ok', nats: 'ok' },
        counters: { rateLimitRedisFailures: 0, watchStreams: 0 },
      },
    });
  });

  it('answers /readyz on the admin port of a worker process', async () => {
    const port = worker.herald.adminPort;
    expect(port).not.toBeNull();
    expect(await probe(`http://127.0.0.1:${port}/readyz`)).toMatchObject({
      status: 200,
      body: { ready: true },
    });
  });

  it('answers 404 for an unknown path', async () => {
    expect((await probe(`${api.httpUrl}/nope`)).status).toBe(404);
  });
});
