// `larder:vfs/store` in memory: what the Node runner lends an app, and the
// model the OPFS store is compared with.

import { assemble, check, clamp, compareKeys, components, fail } from './store-rules.js';

export class MemoryStore {
  #objects = new Map();
  #next = 0;

  #info(key, o) {
    return { key, size: BigInt(o.body.length), etag: o.etag, meta: o.meta.map(([k, v]) => [k, v]) };
  }

  /** Every key with its bytes and metadata, in key order. */
  contents() {
    return [...this.#objects.entries()]
      .sort(([a], [b]) => compareKeys(a, b))
      .map(([key, o]) => ({ key, body: o.body, meta: Object.fromEntries(o.meta) }));
  }

  list(prefix) {
    return [...this.#objects.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => compareKeys(a, b))
      .map(([k, o]) => this.#info(k, o));
  }

  head(key) {
    components(key);
    const o = this.#objects.get(key);
    return o && this.#info(key, o);
  }

  get(key, range, cond) {
    components(key);
    const o = this.#objects.get(key);
    if (!o) fail('not-found', key);
    check(key, cond, o.etag);
    const [start, end] = clamp(range, o.body.length);
    return o.body.slice(start, end);
  }

  put(key, body, meta, cond) {
    components(key);
    check(key, cond, this.#objects.get(key)?.etag);
    const etag = `"m${this.#next++}"`;
    this.#objects.set(key, { body: new Uint8Array(body), meta: meta.map(([k, v]) => [k, v]), etag });
    return etag;
  }

  putParts(key, parts, meta, cond) {
    components(key);
    const current = this.#objects.get(key);
    check(key, cond, current?.etag);
    return this.put(key, assemble(parts, current?.body ?? new Uint8Array()), meta, { tag: 'none' });
  }

  copy(source, destination, meta, cond) {
    const body = this.get(source, undefined, { tag: 'none' });
    return this.put(destination, body, meta, cond);
  }

  delete(key) {
    components(key);
    this.#objects.delete(key);
  }

  enforcesConditions() {
    return true;
  }
}
