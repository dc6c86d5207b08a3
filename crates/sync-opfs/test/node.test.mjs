// The same composed apps under jco on Node.js (a second JavaScript
// runtime), lent an in-memory store.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadComponent } from '../src/node.js';
import { MemoryStore } from '../src/memory-store.js';
import { app, conformanceReference, settleConformance } from './common.mjs';

test('the notebook keeps its files in the store it is lent, across runs', async () => {
  const notebook = await loadComponent(app('node/notebook'));
  const store = new MemoryStore();
  const run = (...argv) => notebook.run(['notebook', ...argv], { store });

  assert.deepEqual(await run('visit'), { code: 0, stdout: 'visits 1\n', stderr: '' });
  assert.equal((await run('add', 'first')).stdout, 'added 0001.txt\n');
  assert.equal((await run('add', 'sécond ✓')).stdout, 'added 0002.txt\n');
  assert.deepEqual(await run('visit'), {
    code: 0,
    stdout: 'visits 2\nnote 0001.txt first\nnote 0002.txt sécond ✓\n',
    stderr: '',
  });

  // The store holds the tree 1:1 by path, with s3fs-style metadata.
  const objects = store.contents();
  assert.deepEqual(objects.map((o) => o.key), ['notes/', 'notes/0001.txt', 'notes/0002.txt', 'visits']);
  const byKey = Object.fromEntries(objects.map((o) => [o.key, o]));
  assert.equal(Buffer.from(byKey['notes/0002.txt'].body).toString(), 'sécond ✓');
  assert.equal(Buffer.from(byKey.visits.body).toString(), '2\n');
  assert.equal(Number(byKey.visits.meta.mode) & 0o170000, 0o100000);
  assert.equal(Number(byKey['notes/'].meta.mode) & 0o170000, 0o040000);
  const age = Date.now() / 1000 - Number(byKey.visits.meta.mtime);
  assert.ok(age >= 0 && age < 600, `mtime ${byKey.visits.meta.mtime} is not the time of the write`);
});

test('exit codes and errors reach the caller', async () => {
  const notebook = await loadComponent(app('node/notebook'));
  const store = new MemoryStore();
  const usage = await notebook.run(['notebook', 'bogus'], { store });
  // Rust's `exit(2)` reaches WASI 0.2 as `exit(err)`: status 1, as under wasmtime.
  assert.equal(usage.code, 1);
  assert.match(usage.stderr, /^usage: notebook/);
  const missing = await notebook.run(['notebook', 'check', '/nope'], { store });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^notebook: .*(No such file|not found)/i);
});

test('an unreachable store stops the app before it runs, with the reason', async () => {
  const notebook = await loadComponent(app('node/notebook'));
  const down = new MemoryStore();
  down.list = () => {
    throw { tag: 'permanent', val: 'the disk is gone' };
  };
  await assert.rejects(notebook.run(['notebook', 'visit'], { store: down }), (e) => {
    assert.equal(e.stdout, '');
    assert.match(e.stderr, /larder: cannot restore the app's files from the store: .*the disk is gone/);
    return true;
  });
});

test('the conformance program answers under jco on Node exactly as under larder run', async () => {
  const reference = conformanceReference();
  const conformance = await loadComponent(app('node/conformance'));
  const store = new MemoryStore();
  const first = await conformance.run(['conformance'], { store });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(settleConformance(first.stdout), reference);
  // Again, on the tree the first run left in the store.
  const second = await conformance.run(['conformance'], { store });
  assert.equal(settleConformance(second.stdout), reference);
});

test('the package tarball holds every entry point and its types, and nothing of the tests', async () => {
  const { execFileSync } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const root = new URL('..', import.meta.url);
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--loglevel=error'], { cwd: root }));
  const files = new Set(packed.files.map((f) => f.path));
  const pkg = JSON.parse(readFileSync(new URL('package.json', root)));
  const wanted = [pkg.types, ...Object.values(pkg.exports).flatMap((e) => [e.types, e.default])];
  for (const path of wanted) assert.ok(files.has(path.replace(/^\.\//, '')), `${path} is not in the tarball`);
  // The browser entry starts workers from beside itself.
  assert.ok(files.has('dist/app-worker.js') && files.has('dist/opfs-worker.js'));
  assert.deepEqual([...files].filter((f) => /^(test|bench|node_modules)\//.test(f)), []);
  // What src/node.js imports at run time is a dependency, not a dev one.
  assert.ok(pkg.dependencies['@bytecodealliance/preview2-shim']);
});

test('a large file reaches the store a piece at a time, written and rewritten', async () => {
  const fsbench = await loadComponent(app('node/fsbench'));
  const store = new MemoryStore();
  const calls = [];
  let largestPut = 0;
  for (const op of ['put', 'putParts', 'uploadKeep', 'uploadWrite', 'uploadFinish']) {
    const f = store[op].bind(store);
    store[op] = (...args) => {
      calls.push(op);
      if (op === 'put') largestPut = Math.max(largestPut, args[1].length);
      return f(...args);
    };
  }
  const run = async (workload) => {
    const r = await fsbench.run(['fsbench', '/bench', workload], { store });
    assert.equal(r.code, 0, r.stderr);
  };
  const big = () => store.contents().find((o) => o.key === 'bench/big').body;

  // 100 MiB written and fsynced: it crosses in 1 MiB writes, never whole.
  await run('seq-write');
  assert.equal(big().length, 100 << 20);
  assert.ok(big().every((b) => b === 0x5a));
  assert.equal(calls.filter((c) => c === 'uploadWrite').length, 100);
  assert.ok(largestPut <= 1 << 20 && !calls.includes('putParts'), `a put of ${largestPut} bytes`);

  // A fresh instance (restored lazily) writes 4 KiB at 4,096 offsets, in
  // every 8 MiB piece: the rewrite goes up a piece at a time too.
  calls.length = 0;
  largestPut = 0;
  await run('rand-write');
  const want = new Uint8Array(100 << 20).fill(0x5a);
  let x = 0x2545f4914f6cdd1dn;
  const mask = (1n << 64n) - 1n;
  for (let i = 0; i < 4096; i++) {
    x ^= (x << 13n) & mask;
    x ^= x >> 7n;
    x ^= (x << 17n) & mask;
    want.fill(7, Number(x % 25600n) * 4096, Number(x % 25600n) * 4096 + 4096);
  }
  assert.ok(Buffer.from(big()).equals(Buffer.from(want)), 'the store holds seq-write then rand-write');
  assert.ok(largestPut <= 1 << 20 && !calls.includes('putParts'), `a put of ${largestPut} bytes`);
  assert.ok(calls.includes('uploadFinish'));
});
