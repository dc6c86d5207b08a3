// Paths, the server and the browser the tests share. The apps are built by
// `just web` (composed with `larder compose --persist host`, transpiled by
// jco into target/web/); the tests refuse to run without them.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from '../serve.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
export const REPO = here('../../../');
export const WEB = join(REPO, 'target/web');
export const ARTEFACTS = join(REPO, 'target/artefacts');

/** A transpiled app: `browser/NAME` (for multi-memory engines) or
 * `node/NAME` (Node 20's V8 has no multi-memory), at `target/web/`. */
export function app(path) {
  const js = join(WEB, path, `${path.split('/').pop()}.js`);
  if (!existsSync(js)) throw new Error(`${js} is missing: run \`just web\` first`);
  return js;
}

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The example page, the harness, and the package, as one site. */
export async function site() {
  app('browser/notebook');
  if (!existsSync(here('../dist/larder.js'))) throw new Error('dist/ is missing: run `npm run build`');
  const server = await serve({
    '/': join(REPO, 'examples/browser'),
    '/larder': here('../dist'),
    '/src': here('../src'),
    '/test': here('.'),
    '/app': join(WEB, 'browser'),
  });
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** A fresh browser profile directory, removed by `done()`. */
export function profile() {
  const dir = mkdtempSync(join(tmpdir(), 'larder-chromium-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Headless Chromium on `profileDir`: what is kept there (OPFS included)
 * outlives the browser, as a user's profile does. */
export async function browser(profileDir) {
  const context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true });
  const errors = [];
  context.on('weberror', (e) => errors.push(String(e.error())));
  return { context, errors };
}

/** Opens `url` in a new tab and waits for the page to settle. */
export async function open(context, url) {
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && !m.text().includes('404') && console.error(`[page] ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60_000 });
  return page;
}

export function artefact(name) {
  mkdirSync(ARTEFACTS, { recursive: true });
  return join(ARTEFACTS, name);
}

/** The conformance program's output under `larder run` (the host-side
 * engine, itself held to `wasmtime run --dir` by the Rust tests). */
export function conformanceReference() {
  const larder = join(REPO, 'target/debug/larder');
  const guest = join(REPO, 'examples/guests/target/wasm32-wasip2/release/conformance.wasm');
  const out = execFileSync(larder, ['run', guest], { encoding: 'utf8' });
  if (out.split('\n').length < 100) throw new Error('the conformance program printed too little');
  return out;
}

/** `out` with the one line where two right answers differ made the
 * reference's: polling a ready file with a timer that has just expired,
 * wasmtime reports the timer a poll later (its sleep future has not been
 * polled yet); jco's runs here report it at once. */
export const settleConformance = (out) =>
  out.replace('poll-file-and-elapsed-timer: ok [0, 1]\n', 'poll-file-and-elapsed-timer: ok [1]\n');

/** Runs `fn(browser)` in a fresh headless Chromium and profile, closed
 * afterwards whatever happens. */
export async function withBrowser(fn) {
  const p = profile();
  const b = await browser(p.dir);
  try {
    return await fn(b);
  } finally {
    await b.context.close();
    p.done();
  }
}
