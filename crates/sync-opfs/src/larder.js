// Larder in a web page: a composed app (transpiled by jco) runs in a
// worker, its files persisted in the Origin Private File System by a second
// worker that owns them. See the package README for the design.

import { bridgeMemory } from './bridge.js';

/** Another tab or window of this site has the filesystem open. */
export class LarderLockedError extends Error {
  name = 'LarderLockedError';
}

// The first message a worker sends (or its failure to start).
const reply = (worker) =>
  new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => resolve(data);
    worker.onerror = (e) => reject(new Error(`${e.message} (${e.filename}:${e.lineno})`));
  });

/**
 * Opens the filesystem kept in OPFS directory `root` and loads the app at
 * `component` (the JavaScript jco wrote with `--instantiation async`).
 * Rejects with `LarderLockedError` while another tab has `root` open.
 * `pauseInPut` is for tests: the store stops half way through writing that
 * key, and `paused()` resolves.
 */
export async function openLarder({ component, root = 'larder', pauseInPut } = {}) {
  if (!globalThis.crossOriginIsolated) {
    throw new Error(
      'Larder needs a cross-origin isolated page (headers Cross-Origin-Opener-Policy: same-origin and ' +
        'Cross-Origin-Embedder-Policy: require-corp): the app worker waits for the store on shared memory',
    );
  }
  const memory = bridgeMemory();
  const channel = new MessageChannel();
  const opfs = new Worker(new URL('./opfs-worker.js', import.meta.url), { type: 'module' });
  const opened = reply(opfs);
  opfs.postMessage({ root, port: channel.port2, memory, pauseInPut }, [channel.port2]);
  const o = await opened.catch((e) => ({ failed: e.message }));
  if (!o.ready) {
    opfs.terminate();
    if (o.locked) {
      throw new LarderLockedError(
        `the files in OPFS directory "${root}" are open in another tab or window of this site; close it and reload`,
      );
    }
    throw new Error(o.failed ?? 'the OPFS worker did not start');
  }
  const app = new Worker(new URL('./app-worker.js', import.meta.url), { type: 'module' });
  const loaded = reply(app);
  const url = new URL(component, location.href).href;
  app.postMessage({ load: { component: url, port: channel.port1, memory } }, [channel.port1]);
  const l = await loaded.catch((e) => ({ failed: e.message }));
  if (!l.loaded) {
    app.terminate();
    opfs.terminate();
    throw new Error(l.failed);
  }
  return new Larder(app, opfs);
}

class Larder {
  #app;
  #opfs;
  #queue = Promise.resolve();
  #runs = new Map();
  #next = 0;
  #paused;
  #dead = null;

  constructor(app, opfs) {
    this.#app = app;
    this.#opfs = opfs;
    this.#paused = new Promise((resolve) => {
      opfs.onmessage = ({ data }) => data.paused && resolve(data.paused);
    });
    app.onmessage = ({ data }) => this.#message(data);
    app.onerror = (e) => this.#fail(`the app worker failed: ${e.message}`);
    opfs.onerror = (e) => this.#fail(`the OPFS worker failed: ${e.message}`);
  }

  #message(data) {
    const run = this.#runs.get(data.id);
    if (!run) return;
    const text = (b) => run.decoder.decode(b, { stream: true });
    if (data.stdout) {
      const s = text(data.stdout);
      run.stdout += s;
      run.onStdout?.(s);
    } else if (data.stderr) {
      const s = text(data.stderr);
      run.stderr += s;
      run.onStderr?.(s);
    } else {
      this.#runs.delete(data.id);
      if (data.trap !== undefined) run.reject(new Error(`the app trapped: ${data.trap}\n${run.stderr}`));
      else run.resolve({ code: data.code, stdout: run.stdout, stderr: run.stderr });
    }
  }

  #fail(message) {
    this.#dead ??= message;
    for (const run of this.#runs.values()) run.reject(new Error(message));
    this.#runs.clear();
  }

  /**
   * Runs the app once with `argv` (its name first) in a fresh instance,
   * after the previous run ends. Resolves to `{ code, stdout, stderr }`;
   * `onStdout`/`onStderr` see the text as it comes.
   */
  run(argv, { env = {}, onStdout, onStderr } = {}) {
    const go = () =>
      new Promise((resolve, reject) => {
        if (this.#dead) return reject(new Error(this.#dead));
        const id = this.#next++;
        this.#runs.set(id, { resolve, reject, onStdout, onStderr, stdout: '', stderr: '', decoder: new TextDecoder() });
        this.#app.postMessage({ run: { id, argv, env } });
      });
    const result = this.#queue.then(go, go);
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Resolves with the key when the store has paused in a put (tests). */
  paused() {
    return this.#paused;
  }

  /** Ends both workers at once, as a crashed tab would: a run in progress
   * stops where it is, and the lock is released. */
  terminate() {
    this.#app.terminate();
    this.#opfs.terminate();
    this.#fail('Larder was terminated');
  }
}
