/**
 * `herald` child processes for tests that stop or kill a role: output captured, exits awaited,
 * and every process still running killed by `killAll()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

export interface HeraldProcess {
  proc: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What the process wrote to stdout and stderr so far, for failure messages. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output, once it appears. */
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
}

const running: HeraldProcess[] = [];

/** Starts `node dist/src/cli.js <args>` with exactly `env`. */
export function spawnHerald(
  args: string[],
  env: Record<string, string | undefined>,
): HeraldProcess {
  const proc = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const watchers = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    for (const w of watchers) w();
  };
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
    proc.once('error', () => resolve({ code: proc.exitCode, signal: proc.signalCode }));
  });
  const child: HeraldProcess = {
    proc,
    exited,
    output: () => output,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = output.match(pattern);
          if (match) {
            watchers.delete(check);
            resolve(match);
          }
        };
        watchers.add(check);
        check();
        void exited.then(() => {
          if (watchers.delete(check)) {
            reject(new Error(`process exited before printing ${pattern}:\n${output}`));
          }
        });
      }),
  };
  running.push(child);
  return child;
}

/** SIGKILLs every process spawnHerald started that is still running, and waits for them. */
export async function killAll(): Promise<void> {
  for (const child of running.splice(0)) {
    if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
    await child.exited;
  }
}

/**
 * `herald all` as a child process on the database and NATS layout of `env` (a TestHerald's), not
 * migrating; resolves once it serves, with its h2c URL.
 */
export async function spawnHeraldAll(
  env: Record<string, string>,
): Promise<{ child: HeraldProcess; url: string }> {
  const child = spawnHerald(['all'], { ...process.env, ...env, HERALD_MIGRATE_ON_START: 'false' });
  const [, port] = await child.waitFor(/\(h2c\) on http:\/\/127\.0\.0\.1:(\d+)/);
  return { child, url: `http://127.0.0.1:${port}` };
}
