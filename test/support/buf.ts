/**
 * Runs `buf curl` from the @bufbuild/buf package, offline: a private HOME and cache, so buf finds
 * no user config, tokens or remote modules, and relies on the server's reflection for schemas.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bufBin = createRequire(import.meta.url).resolve('@bufbuild/buf/bin/buf');

/** How a buf run ended. An RPC failure exits with its gRPC code shifted left by three bits. */
export interface BufResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `buf curl --protocol grpc --http2-prior-knowledge <args>` (h2c); close() removes the cache. */
export interface BufCurl {
  (...args: string[]): Promise<BufResult>;
  close(): Promise<void>;
}

export async function createBufCurl(): Promise<BufCurl> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'herald-buf-'));
  const run = (...args: string[]) =>
    new Promise<BufResult>((resolve) => {
      execFile(
        process.execPath,
        [
          bufBin,
          'curl',
          '--timeout',
          '20s',
          '--protocol',
          'grpc',
          '--http2-prior-knowledge',
          ...args,
        ],
        {
          timeout: 30_000,
          env: { PATH: process.env['PATH'], HOME: cacheDir, BUF_CACHE_DIR: cacheDir },
        },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  return Object.assign(run, {
    close: () => rm(cacheDir, { recursive: true, force: true }),
  });
}
