// What the browser tests drive through `page.evaluate`: Larder's page API,
// the OPFS store on its own, and the page's own view of OPFS.

import { LarderLockedError, openLarder } from '/larder/larder.js';
import { OpfsStore } from '/src/opfs-store.js';
import { apply } from '/test/ops.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fileAt(path) {
  let dir = await navigator.storage.getDirectory();
  const parts = path.split('/');
  for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
  return (await dir.getFileHandle(parts[parts.length - 1])).getFile();
}

window.harness = {
  /** Opens Larder on the notebook app; a lock still held by workers just
   * terminated is waited for (up to 10 s). */
  async open(options = {}) {
    for (let i = 0; ; i++) {
      try {
        window.larder = await openLarder({ component: '/app/notebook/notebook.js', ...options });
        return 'open';
      } catch (e) {
        if (!(e instanceof LarderLockedError)) throw e;
        if (i >= 100) return `locked: ${e.message}`;
        await sleep(100);
      }
    }
  },
  run: (argv) => window.larder.run(['notebook', ...argv]),
  runAs: (argv) => window.larder.run(argv),
  paused: () => window.larder.paused(),
  terminate: () => window.larder.terminate(),

  /** A file under the OPFS root, read with the page's own OPFS calls:
   * its size and the one byte it repeats (null if it mixes bytes). */
  async uniform(path) {
    const bytes = new Uint8Array(await (await fileAt(path)).arrayBuffer());
    return { size: bytes.length, byte: bytes.every((b) => b === bytes[0]) ? bytes[0] ?? null : null };
  },
  text: async (path) => (await fileAt(path)).text(),
  /** Every name under OPFS directory `path`, recursively. */
  async names(path) {
    let dir = await navigator.storage.getDirectory();
    for (const p of path.split('/')) dir = await dir.getDirectoryHandle(p);
    const out = [];
    const walk = async (d, rel) => {
      for await (const [name, h] of d.entries()) {
        out.push(rel + name);
        if (h.kind === 'directory') await walk(h, `${rel}${name}/`);
      }
    };
    await walk(dir, '');
    return out.sort();
  },
  /** Applies a differential-test script to a fresh OPFS store at `root`. */
  async applyOps(root, ops) {
    return apply(await OpfsStore.open(root), ops);
  },
};
document.body.dataset.state = 'ready';
