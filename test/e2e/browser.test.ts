/**
 * The example frontend (clients/graphql/example) in a real browser: Debian's Chromium, driven by
 * playwright-core, loads the page built by `npm run build` from a local server of another origin
 * than the gateway's, with a user token. Notifications sent over gRPC appear and reach DELIVERED
 * without a reload; another user's never appear; a rejected token is shown as an error.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, NotificationStatus, createHeraldClient, type HeraldClient } from '@herald/client';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issueUserToken } from '../../src/infra/auth/user-tokens.js';
import { createTestApiKey } from '../support/access.js';
import { createCleanups } from '../support/cleanups.js';
import { closeServer, listenOnFreePort } from '../support/http-server.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const MASTER = 'browser-test-master-secret-0123456789abcdef';
const TENANT = 'tenant-web';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PAGE_PATH = '/clients/graphql/example/index.html';
// What the page needs: its HTML, and the modules `npm run build` compiled from it.
const SERVED = ['/clients/graphql/example/', '/dist/clients/graphql/'];
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
};
/** How long one wait on the page may take before the test fails (a safety net, not a threshold). */
const WAIT_MS = 20_000;

/**
 * Run in the page before its own scripts: records, per notification row, every status it shows,
 * in order, so the test sees rows that came and went and statuses that changed between waits.
 */
const RECORD_ROWS = `
  window.statusHistory = {};
  new MutationObserver(() => {
    for (const row of document.querySelectorAll('tr[data-id]')) {
      const seen = (window.statusHistory[row.dataset.id] ??= []);
      if (seen.at(-1) !== row.dataset.status) seen.push(row.dataset.status);
    }
  }).observe(document, { subtree: true, childList: true, attributes: true });
`;

let t: TestHerald;
let sender: HeraldClient;
let browser: Browser;
let site: http.Server;
let siteUrl: string;
const cleanups = createCleanups();

/** A static server for the example, on another origin (port) than the gateway. */
function createSiteServer(): http.Server {
  return http.createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!SERVED.some((prefix) => path.startsWith(prefix.replaceAll('/', sep)))) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = readFileSync(join(ROOT, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
}

function tokenFor(userId: string): string {
  return issueUserToken({ master: MASTER, tenantId: TENANT, userId });
}

/** Opens the example in a fresh context (no cookies, no cache), connected with `token`. */
async function openPage(token: string): Promise<Page> {
  const context: BrowserContext = await browser.newContext();
  cleanups.add(() => context.close());
  context.setDefaultTimeout(WAIT_MS);
  await context.addInitScript({ content: RECORD_ROWS });
  const page = await context.newPage();
  const pageErrors: Error[] = [];
  page.on('pageerror', (err) => pageErrors.push(err));
  cleanups.add(() => expect(pageErrors, 'uncaught errors in the page').toEqual([]));
  const query = new URLSearchParams({ gateway: t.gatewayUrl ?? '', token });
  await page.goto(`${siteUrl}${PAGE_PATH}?${query.toString()}`);
  return page;
}

/** Waits until the page has connected or given up; returns its state and the text it shows. */
async function settledState(page: Page): Promise<{ state: string | null; text: string | null }> {
  const state = page.locator('#state:not([data-state="idle"]):not([data-state="connecting"])');
  await state.waitFor();
  return { state: await state.getAttribute('data-state'), text: await state.textContent() };
}

async function watchStreams(): Promise<number> {
  const res = await fetch(`${t.httpUrl}/readyz`);
  const body = (await res.json()) as { counters?: { watchStreams?: number } };
  const n = body.counters?.watchStreams;
  if (typeof n !== 'number') throw new Error(`no watchStreams counter in ${JSON.stringify(body)}`);
  return n;
}

async function statusHistory(page: Page): Promise<Record<string, string[]>> {
  return page.evaluate<Record<string, string[]>>('window.statusHistory');
}

function sendInApp(userId: string, title: string) {
  return sender.send({ userId, channel: Channel.IN_APP, content: { title, body: 'b' } });
}

beforeAll(async () => {
  t = await startTestHerald({
    gateway: true,
    env: { HERALD_AUTH: 'required', HERALD_TOKEN_SECRET: MASTER },
  });
  const apiKey = await createTestApiKey(t.db.pool, TENANT, ['send', 'read']);
  sender = createHeraldClient({ baseUrl: t.h2cUrl, apiKey });
  site = createSiteServer();
  siteUrl = `http://127.0.0.1:${await listenOnFreePort(site)}`;
  // launch() starts Chromium on a new, empty, temporary profile (user data dir) and deletes it on
  // close; each test then opens its own context on it.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterEach(async () => {
  await cleanups.runAll();
});

afterAll(async () => {
  await browser?.close();
  if (site !== undefined) await closeServer(site);
  sender?.close();
  await t?.stop();
});

describe('example frontend', () => {
  it('shows the user’s notifications reaching DELIVERED live, and never another user’s', async () => {
    const page = await openPage(tokenFor('alice'));
    const settled = await settledState(page);
    expect(settled, 'the page connected').toEqual({ state: 'live', text: 'Live' });
    // The feed's Watch stream is open at the api: what is sent from now on arrives live.
    await expect.poll(watchStreams, { timeout: WAIT_MS }).toBe(1);
    // A reload would lose this.
    await page.evaluate('window.sameDocument = true');

    const bobs = await sendInApp('bob', 'for bob');
    const first = await sendInApp('alice', 'first for alice');
    const row = page.locator(`tr[data-id="${first.id}"]`);
    await page.locator(`tr[data-id="${first.id}"][data-status="DELIVERED"]`).waitFor();
    expect(await row.locator('td.title').textContent()).toBe('first for alice');
    expect(await row.locator('td.status').textContent()).toBe('DELIVERED');
    // Every change, in order, on the one row: the page updated it in place. (in_app has no
    // PROCESSING step: its worker marks it DELIVERED as it claims it.)
    expect((await statusHistory(page))[first.id]).toEqual(['PENDING', 'DELIVERED']);

    // Bob's is delivered, and a later one of alice's arrives after it: bob's had its chance.
    await expect
      .poll(async () => (await sender.getNotification({ id: bobs.id })).notification?.status, {
        timeout: WAIT_MS,
      })
      .toBe(NotificationStatus.DELIVERED);
    const second = await sendInApp('alice', 'second for alice');
    await page.locator(`tr[data-id="${second.id}"][data-status="DELIVERED"]`).waitFor();

    expect(Object.keys(await statusHistory(page)).sort()).toEqual([first.id, second.id].sort());
    expect(await page.locator(`tr[data-id="${bobs.id}"]`).count()).toBe(0);
    expect(await page.evaluate('window.sameDocument'), 'the page was not reloaded').toBe(true);

    // A fresh load lists the same two from the query, newest first.
    const fresh = await openPage(tokenFor('alice'));
    expect(await settledState(fresh)).toEqual({ state: 'live', text: 'Live' });
    await fresh.locator(`tr[data-id="${first.id}"][data-status="DELIVERED"]`).waitFor();
    const rows = await fresh.locator('tr[data-id]').all();
    expect(await Promise.all(rows.map((r) => r.getAttribute('data-id')))).toEqual([
      second.id,
      first.id,
    ]);
    expect(await fresh.locator('#unread').textContent()).toBe('2');
  });

  it('shows an error and no rows when the gateway rejects the token', async () => {
    await sendInApp('carol', 'for carol');
    const forged = issueUserToken({
      master: 'not-the-master-secret-0123456789abcdef',
      tenantId: TENANT,
      userId: 'carol',
    });
    const page = await openPage(forged);
    const { state, text } = await settledState(page);
    expect(state).toBe('error');
    expect(text).toMatch(/UNAUTHENTICATED/);
    expect(await page.locator('tr[data-id]').count()).toBe(0);
  });
});
