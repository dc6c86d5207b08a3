// The composed notebook in headless Chromium (Debian's), its files in OPFS.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MemoryStore } from '../src/memory-store.js';
import { artefact, browser, conformanceReference, open, profile, settleConformance, site, withBrowser } from './common.mjs';
import { apply, script } from './ops.js';

let web;
before(async () => {
  web = await site();
});
after(() => web.close());

const state = (page) => page.evaluate(() => document.body.dataset.state);
const notes = (page) => page.$$eval('#notes li', (lis) => lis.map((li) => li.textContent));
const visits = (page) => page.textContent('#visits');

async function addNote(page, text) {
  const before = await notes(page);
  await page.fill('#text', text);
  await page.click('#add button');
  await page.waitForFunction((n) => document.querySelectorAll('#notes li').length > n || document.body.dataset.state === 'error', before.length);
  assert.equal(await state(page), 'ready', await page.textContent('#status'));
}

test('notes survive a reload and a browser restart, and the page reads them from OPFS itself', async () => {
  const p = profile();
  let b = await browser(p.dir);
  try {
    let page = await open(b.context, `${web.url}/`);
    assert.equal(await state(page), 'ready', await page.textContent('#status'));
    assert.equal(await page.isEnabled('#text'), true);
    assert.equal(await visits(page), 'Opened 1 time.');
    assert.deepEqual(await notes(page), []);
    await addNote(page, 'buy flour');
    await addNote(page, 'ünïcode ✓ and spaces');

    await page.reload();
    await page.waitForFunction(() => document.body.dataset.state !== 'loading');
    assert.equal(await state(page), 'ready', await page.textContent('#status'));
    assert.equal(await visits(page), 'Opened 2 times.');
    assert.deepEqual(await notes(page), ['buy flour', 'ünïcode ✓ and spaces']);
    await page.screenshot({ path: artefact('browser-after-reload.png'), fullPage: true });

    // The page's own OPFS calls see the app's files at larder/<path>.
    const read = (path) =>
      page.evaluate(async (path) => {
        let dir = await navigator.storage.getDirectory();
        const parts = path.split('/');
        for (const name of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(name);
        return (await (await dir.getFileHandle(parts.at(-1))).getFile()).text();
      }, path);
    assert.equal(await read('larder/visits'), '2\n');
    assert.equal(await read('larder/notes/0001.txt'), 'buy flour');
    assert.equal(await read('larder/notes/0002.txt'), 'ünïcode ✓ and spaces');
    assert.match(await page.textContent('#files'), /larder\/notes\/0002\.txt {2}24 bytes/);

    await b.context.close();
    assert.deepEqual(b.errors, []);
    b = await browser(p.dir);
    page = await open(b.context, `${web.url}/`);
    assert.equal(await state(page), 'ready', await page.textContent('#status'));
    assert.equal(await visits(page), 'Opened 3 times.');
    assert.deepEqual(await notes(page), ['buy flour', 'ünïcode ✓ and spaces']);
    assert.deepEqual(b.errors, []);
  } finally {
    await b.context.close();
    p.done();
  }
});

test('a second tab is refused with a clear error while the first has the files open', async () => {
  await withBrowser(async (b) => {
    const first = await open(b.context, `${web.url}/`);
    assert.equal(await state(first), 'ready');
    await addNote(first, 'from the first tab');
    const second = await open(b.context, `${web.url}/`);
    assert.equal(await state(second), 'locked');
    assert.match(await second.textContent('#status'), /open in another tab or window of this site/);
    // Nothing to submit in a tab that did not start: no native GET.
    assert.equal(await second.isDisabled('#text'), true);
    assert.equal(await second.isDisabled('#add button'), true);
    // The refused tab ran nothing: the first tab's files are as they were.
    await first.reload();
    await first.waitForFunction(() => document.body.dataset.state !== 'loading');
    assert.equal(await visits(first), 'Opened 2 times.');
    // With the first tab gone, the second opens the same files.
    await first.close();
    await second.waitForTimeout(200);
    await second.reload();
    await second.waitForFunction(() => document.body.dataset.state !== 'loading');
    assert.equal(await state(second), 'ready', await second.textContent('#status'));
    assert.equal(await visits(second), 'Opened 3 times.');
    assert.deepEqual(await notes(second), ['from the first tab']);
  });
});

const MiB = 1 << 20;

test('workers killed between a write and its sync leave the old file or the new, never a torn one', async () => {
  await withBrowser(async (b) => {
    const page = await open(b.context, `${web.url}/test/page/`);
    const h = (f, ...args) => page.evaluate(f, ...args);
    const check = async (expected) => {
      assert.equal(await h(() => harness.open()), 'open');
      const r = await h(() => harness.run(['check', '/big']));
      assert.equal(r.code, 0, r.stderr);
      const seen = await h(() => harness.uniform('larder/big'));
      assert.ok(seen.byte !== null && seen.size === 8 * MiB, `larder/big in OPFS is torn: ${JSON.stringify(seen)}`);
      assert.equal(r.stdout, `uniform ${seen.byte} ${8 * MiB}\n`);
      if (expected !== undefined) assert.equal(seen.byte, expected);
      return seen.byte;
    };
    assert.equal(await h(() => harness.open()), 'open');
    const started = Date.now();
    const r = await h((n) => harness.run(['fill', '/big', '65', String(n)]), 8 * MiB);
    const whole = Date.now() - started;
    assert.equal(r.code, 0, r.stderr);
    await h(() => harness.terminate());
    await check(65);

    // Killed inside the store's write, half the new bytes written: old.
    await h(() => harness.terminate());
    assert.equal(await h(() => harness.open({ pauseInPut: 'big' })), 'open');
    await h(() => {
      harness.run(['fill', '/big', '66', String(8 << 20)]);
      return harness.paused();
    });
    await h(() => harness.terminate());
    await check(65);
    // Nothing of the killed write is left for the page's script to see.
    assert.deepEqual(await h(() => harness.names('larder')), ['big']);

    // Killed at random points of a run (restore, write, fsync, swap).
    let last = 65;
    const outcomes = { old: 0, new: 0 };
    for (let i = 0; i < 10; i++) {
      const byte = 70 + i;
      await h(() => harness.terminate());
      assert.equal(await h(() => harness.open()), 'open');
      // Anywhere in a run's time, and now and then after it.
      const delay = Math.floor(Math.random() * whole * 1.2);
      await h(
        ([byte, delay]) => {
          harness.run(['fill', '/big', String(byte), String(8 << 20)]).catch(() => {});
          return new Promise((r) => setTimeout(r, delay));
        },
        [byte, delay],
      );
      await h(() => harness.terminate());
      const now = await check();
      assert.ok(now === last || now === byte, `after a kill at ${delay} ms: byte ${now}, expected ${last} or ${byte}`);
      outcomes[now === byte ? 'new' : 'old']++;
      last = now;
    }
    console.log(`random kills within ${whole} ms: ${JSON.stringify(outcomes)}`);
  });
});

test('the OPFS store answers as the in-memory model does, operation by operation', async () => {
  await withBrowser(async (b) => {
    const page = await open(b.context, `${web.url}/test/page/`);
    for (let seed = 1; seed <= 25; seed++) {
      const ops = script(seed, 80);
      const model = await apply(new MemoryStore(), ops);
      const opfs = await page.evaluate(([root, ops]) => harness.applyOps(root, ops), [`diff-${seed}`, ops]);
      for (let i = 0; i < ops.length; i++) {
        assert.deepEqual(opfs[i], model[i], `seed ${seed}, operation ${i}: ${JSON.stringify(ops[i]).slice(0, 300)}`);
      }
    }
  });
});

test('the conformance program answers in the browser, files in OPFS, exactly as under larder run', async () => {
  const reference = conformanceReference();
  await withBrowser(async (b) => {
    const page = await open(b.context, `${web.url}/test/page/`);
    for (let round = 0; round < 2; round++) {
      assert.equal(await page.evaluate(() => harness.open({ component: '/app/conformance/conformance.js' })), 'open');
      const r = await page.evaluate(() => harness.runAs(['conformance']));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(settleConformance(r.stdout), reference);
      await page.evaluate(() => harness.terminate());
    }
  });
});
