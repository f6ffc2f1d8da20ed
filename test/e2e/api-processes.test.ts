/**
 * Several api processes on one host (HERALD_API_PROCESSES): the CLI forks them, they share the
 * api's ports (each client connection goes to one of them, in turn), what they accept is
 * delivered, one that dies is replaced, and SIGTERM to the CLI process stops them all.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { Channel, createHeraldClient, type HeraldClient } from '@herald/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createCleanups } from '../support/cleanups.js';
import { startTestHerald } from '../support/herald.js';
import { untilDelivered } from '../support/postgres.js';
import { killAll, spawnHerald, spawnHeraldAll } from '../support/processes.js';

const cleanups = createCleanups();
afterEach(async () => {
  await killAll();
  await cleanups.runAll();
});

/** Pids of the live processes whose parent is `ppid` (from /proc/<pid>/stat). */
function childrenOf(ppid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid ...; comm may hold spaces and parentheses.
    const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(parent) === ppid && state !== 'Z') pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

/**
 * The processes of `pids` that hold none of the established server-side TCP connections to the
 * port of `url` (IPv4 loopback; sockets matched by inode between /proc/net/tcp and each process's
 * file descriptors).
 */
function withoutConnections(pids: readonly number[], url: string): number[] {
  const port = Number(new URL(url).port);
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const localPort = Number.parseInt(cols[1]!.split(':')[1]!, 16);
    if (localPort === port && cols[3] === '01') inodes.add(cols[9]!);
  }
  const holds = (pid: number) =>
    readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        return m !== null && inodes.has(m[1]!);
      } catch {
        return false; // closed meanwhile
      }
    });
  return pids.filter((pid) => !holds(pid));
}

/** A TestHerald's database and NATS layout with `herald all` as a child process on them. */
async function heraldAllWith(env: Record<string, string>) {
  const t = await startTestHerald({ roles: [] });
  cleanups.add(() => t.stop());
  const { child, url } = await spawnHeraldAll({ ...t.env, ...env });
  return { t, child, url };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function clients(url: string, n: number, apiKey?: string): HeraldClient[] {
  return Array.from({ length: n }, () => {
    const client = createHeraldClient({ baseUrl: url, apiKey });
    cleanups.add(() => client.close());
    return client;
  });
}

async function sendFromEach(all: HeraldClient[], userId: string, perClient: number) {
  const sent = await Promise.all(
    all.flatMap((client, i) =>
      Array.from({ length: perClient }, (_, j) =>
        client.send({
          userId,
          channel: Channel.IN_APP,
          content: { title: 't', body: `client ${i}, send ${j}` },
        }),
      ),
    ),
  );
  return sent.map((n) => n.id);
}

const DELIVERY_WAIT = { timeout: 30_000, interval: 200 };

describe('HERALD_API_PROCESSES=2', () => {
  it('herald all spreads client connections over two api processes that deliver what they accept, and stops them on SIGTERM', async () => {
    const { t, child, url } = await heraldAllWith({ HERALD_API_PROCESSES: '2' });
    expect(child.output()).toMatch(/\(2 api processes\)/);
    const apis = childrenOf(child.proc.pid!);
    expect(apis, child.output()).toHaveLength(2);

    const userId = `u-${randomUUID()}`;
    const ids = await sendFromEach(clients(url, 4), userId, 5);

    // Four HTTP/2 sessions, handed out in turn: each api process holds some of them.
    expect(withoutConnections(apis, url)).toEqual([]);
    expect(new Set(ids).size).toBe(20);
    await untilDelivered(t.db.pool, ids, DELIVERY_WAIT);

    child.proc.kill('SIGTERM');
    expect(await child.exited, child.output()).toEqual({ code: 0, signal: null });
    expect(apis.filter(isRunning)).toEqual([]);
  });

  it('replaces an api process killed with SIGKILL, and keeps serving', async () => {
    const { t, child, url } = await heraldAllWith({ HERALD_API_PROCESSES: '2' });
    const [killed, survivor] = childrenOf(child.proc.pid!);

    process.kill(killed!, 'SIGKILL');
    await child.waitFor(/api process exited; replacing it/);
    await child.waitFor(/replacement api process listening/);
    const now = childrenOf(child.proc.pid!);
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(killed);
    // New sessions reach both processes again.
    const userId = `u-${randomUUID()}`;
    const ids = await sendFromEach(clients(url, 4), userId, 2);
    expect(withoutConnections(now, url)).toEqual([]);
    expect(ids).toHaveLength(8);
    await untilDelivered(t.db.pool, ids, DELIVERY_WAIT);
  });

  it('waits twice as long before each replacement while replacements fail to start', async () => {
    const { t, child } = await heraldAllWith({ HERALD_API_PROCESSES: '2' });
    // Hide the latest migration: a new api process finds the schema behind and exits 1.
    const hide =
      "update mikro_orm_migrations set name = name || '-hidden' where id = (select max(id) from mikro_orm_migrations)";
    await t.db.pool.query(hide);
    const restore = "update mikro_orm_migrations set name = replace(name, '-hidden', '')";
    cleanups.add(async () => {
      await t.db.pool.query(restore);
    });

    process.kill(childrenOf(child.proc.pid!)[0]!, 'SIGKILL');
    await child.waitFor(/"inMs":1000,"msg":"api process exited; replacing it"/);
    await child.waitFor(/the database schema is behind/);
    await child.waitFor(/"inMs":2000,"msg":"api process exited; replacing it"/);
    await child.waitFor(/"inMs":4000,"msg":"api process exited; replacing it"/);
    await t.db.pool.query(restore);
    await child.waitFor(/replacement api process listening/);
    expect(childrenOf(child.proc.pid!)).toHaveLength(2);
  });

  it("herald api runs the api processes alone and exits 0 on a terminal's Ctrl-C", async () => {
    const t = await startTestHerald({ roles: ['worker'] });
    cleanups.add(() => t.stop());
    const api = spawnHerald(['api'], {
      ...process.env,
      ...t.env,
      HERALD_MIGRATE_ON_START: 'false',
      HERALD_API_PROCESSES: '2',
    });
    const [, port] = await api.waitFor(
      /\(h2c\) on http:\/\/127\.0\.0\.1:(\d+).*\(2 api processes\)/,
    );
    const apis = childrenOf(api.proc.pid!);
    expect(apis).toHaveLength(2);

    const userId = `u-${randomUUID()}`;
    const ids = await sendFromEach(clients(`http://127.0.0.1:${port}`, 2), userId, 3);
    expect(ids).toHaveLength(6);
    await untilDelivered(t.db.pool, ids, DELIVERY_WAIT);

    // Ctrl-C signals the whole foreground process group: the api processes and the first one.
    for (const pid of [...apis, api.proc.pid!]) process.kill(pid, 'SIGINT');
    expect(await api.exited, api.output()).toEqual({ code: 0, signal: null });
    expect(api.output()).not.toMatch(/stopped uncleanly/); // each stopped once, gracefully
    expect(apis.filter(isRunning)).toEqual([]);
  });
});

describe('the development key of herald all', () => {
  it.each([1, 2])(
    'is made once and accepted by every api process when HERALD_API_PROCESSES=%i',
    async (processes) => {
      const env = {
        HERALD_ENV: 'development',
        HERALD_AUTH: 'required',
        HERALD_API_PROCESSES: String(processes),
      };
      const { t, child, url } = await heraldAllWith(env);
      const [key] = (await child.waitFor(/hk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}/)) as [string];

      // Four sessions, spread over every api process: each accepts the key.
      const userId = `u-${randomUUID()}`;
      const ids = await sendFromEach(clients(url, 4, key), userId, 2);
      const servers = processes > 1 ? childrenOf(child.proc.pid!) : [child.proc.pid!];
      expect(servers).toHaveLength(processes);
      expect(withoutConnections(servers, url)).toEqual([]);
      expect(ids).toHaveLength(8);
      await untilDelivered(t.db.pool, ids, DELIVERY_WAIT);
      const stranger = clients(url, 1)[0]!;
      const refused = await stranger
        .send({ userId, channel: Channel.IN_APP, content: { title: 't', body: 'b' } })
        .catch((err: unknown) => ConnectError.from(err));
      expect(refused).toMatchObject({ code: Code.Unauthenticated });

      // A second start finds the key and makes none.
      child.proc.kill('SIGTERM');
      expect(await child.exited, child.output()).toEqual({ code: 0, signal: null });
      const again = await spawnHeraldAll({ ...t.env, ...env });
      expect(again.child.output()).not.toMatch(/hk_/);
      const { rows } = await t.db.pool.query<{ n: string }>('select count(*) as n from api_key');
      expect(Number(rows[0]?.n)).toBe(1);
    },
  );
});
