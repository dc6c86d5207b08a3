// The browser benchmark: fsbench composed with `--persist host`, run in
// headless Chromium with its files in OPFS, next to the same fsbench under
// `wasmtime run --dir` on tmpfs (the baseline), in one run, one app run per
// workload (timed inside the app on both sides); plus the time
// to run an app once with 1,000 files to restore. Medians of ROUNDS
// rounds; writes target/bench/browser.md. `just bench-browser`.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM, REPO, browser, open, profile, site } from '../test/common.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const WORKLOADS = ['seq-write', 'seq-read', 'rand-read', 'rand-write', 'create', 'stat', 'read-small', 'unlink', 'fsync-1m'];
const guest = (name) => join(REPO, `examples/guests/target/wasm32-wasip2/release/${name}.wasm`);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// `name seconds units` lines -> { name: seconds per unit }.
function parse(out) {
  const r = {};
  for (const line of out.trim().split('\n')) {
    const [name, secs, units] = line.split(' ');
    r[name] = { secs: Number(secs), units: Number(units) };
  }
  return r;
}

function tmpfs() {
  const dir = mkdtempSync(join('/dev/shm', 'larder-bench-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

function wasmtime(dir, wasm, args) {
  return execFileSync('wasmtime', ['run', '--dir', `${dir}::/`, wasm, ...args], { encoding: 'utf8' });
}

const web = await site();
const p = profile();
const b = await browser(p.dir);
const rows = { base: {}, larder: {}, startBase: [], startLarder: [] };
try {
  const page = await open(b.context, `${web.url}/test/page/`);
  const h = (f, arg) => page.evaluate(f, arg);
  for (let round = 0; round < ROUNDS; round++) {
    // One run per workload on both sides, each over the files the runs
    // before it left (so in Larder each starts by restoring them lazily).
    const t = tmpfs();
    const base = {};
    for (const w of WORKLOADS) Object.assign(base, parse(wasmtime(t.dir, guest('fsbench'), ['/bench', w])));
    t.done();
    await h(() => harness.open({ component: '/app/fsbench/fsbench.js', root: `bench-${Math.random()}` }));
    const larder = {};
    for (const w of WORKLOADS) {
      const r = await h((w) => harness.runAs(['fsbench', '/bench', w]), w);
      if (r.code !== 0) throw new Error(`fsbench ${w} in Chromium: ${r.stderr}`);
      Object.assign(larder, parse(r.stdout));
    }
    await h(() => harness.terminate());
    for (const w of WORKLOADS) {
      (rows.base[w] ??= []).push(base[w].secs / base[w].units);
      (rows.larder[w] ??= []).push(larder[w].secs / larder[w].units);
    }

    // Running an app once over 1,000 files left by an earlier run (fsbench
    // `create`, then a run that stats them all): process wall time under
    // wasmtime, run() to result in the page (its worker already up).
    const u = tmpfs();
    wasmtime(u.dir, guest('fsbench'), ['/bench', 'create']);
    let s = performance.now();
    wasmtime(u.dir, guest('fsbench'), ['/bench', 'stat']);
    rows.startBase.push((performance.now() - s) / 1e3);
    u.done();
    const root = `start-${Math.random()}`;
    await h((root) => harness.open({ component: '/app/fsbench/fsbench.js', root }), root);
    if ((await h(() => harness.runAs(['fsbench', '/bench', 'create']))).code !== 0) throw new Error('fsbench create failed');
    await h(() => harness.terminate());
    await h((root) => harness.open({ component: '/app/fsbench/fsbench.js', root }), root);
    const secs = await h(async () => {
      const s = performance.now();
      const r = await harness.runAs(['fsbench', '/bench', 'stat']);
      if (r.code !== 0) throw new Error(`fsbench stat: ${r.stderr}`);
      return (performance.now() - s) / 1e3;
    });
    rows.startLarder.push(secs);
    await h(() => harness.terminate());
  }
} finally {
  await b.context.close();
  p.done();
  web.close();
}

const fmt = (w, x) => (['create', 'stat', 'read-small', 'unlink'].includes(w) ? `${(x * 1e6).toFixed(1)} µs/op` : w === 'fsync-1m' ? `${(x * 1e3).toFixed(2)} ms/file` : `${(1 / x / 2 ** 20).toFixed(0)} MiB/s`);
let md = `Composed app in headless Chromium ${execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(' ')[1]}, files in OPFS, against \`wasmtime run --dir\` on tmpfs, same run (medians of ${ROUNDS}; ratio = baseline time / Larder time, above 1 is faster):\n\n| workload | wasmtime host fs, tmpfs | Larder in Chromium, OPFS | ratio |\n|---|---|---|---|\n`;
for (const w of WORKLOADS) {
  const base = median(rows.base[w]);
  const larder = median(rows.larder[w]);
  md += `| ${w} | ${fmt(w, base)} | ${fmt(w, larder)} | ${(base / larder).toFixed(2)}× |\n`;
}
const sb = median(rows.startBase);
const sl = median(rows.startLarder);
md += `| run an app once, 1,000 files to restore (\`fsbench stat\`) | ${(sb * 1e3).toFixed(0)} ms | ${(sl * 1e3).toFixed(0)} ms | ${(sb / sl).toFixed(2)}× |\n`;
mkdirSync(join(REPO, 'target/bench'), { recursive: true });
writeFileSync(join(REPO, 'target/bench/browser.md'), md);
console.log(md);
