// `larder:vfs/store` in memory: what the Node runner lends an app, and the
// model the OPFS store is compared with.

import { assemble, check, clamp, compareKeys, components, fail, UploadPieces } from './store-rules.js';

export class MemoryStore {
  #objects = new Map();
  #next = 0;
  #uploads = new Map();
  #nextUpload = 0;

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
    return this.#set(key, new Uint8Array(body), meta);
  }

  #set(key, body, meta) {
    const etag = `"m${this.#next++}"`;
    this.#objects.set(key, { body, meta: meta.map(([k, v]) => [k, v]), etag });
    return etag;
  }

  putParts(key, parts, meta, cond) {
    components(key);
    const current = this.#objects.get(key);
    check(key, cond, current?.etag);
    return this.put(key, assemble(parts, current?.body ?? new Uint8Array()), meta, { tag: 'none' });
  }

  uploadBegin(key, size) {
    components(key);
    const id = this.#nextUpload++;
    this.#uploads.set(id, { key, pieces: new UploadPieces(size), data: [] });
    return id;
  }

  #upload(id) {
    const u = this.#uploads.get(id);
    if (!u) fail('permanent', `upload ${id}: finished, dropped or never begun`);
    return u;
  }

  uploadKeep(id, start, end) {
    this.#upload(id).pieces.add(true, start, end);
  }

  uploadWrite(id, offset, data) {
    const u = this.#upload(id);
    u.pieces.add(false, offset, BigInt(offset) + BigInt(data.length));
    u.data.push([Number(offset), new Uint8Array(data)]);
  }

  uploadFinish(id, meta, cond) {
    const u = this.#upload(id);
    this.#uploads.delete(id);
    const current = this.#objects.get(u.key);
    check(u.key, cond, current?.etag);
    let body;
    try {
      body = new Uint8Array(Number(u.pieces.size));
    } catch (e) {
      fail('permanent', `${u.key}: ${u.pieces.size} bytes do not fit in memory`);
    }
    for (const p of u.pieces.list.filter((p) => p.keep)) {
      if (!current || current.body.length < p.end) fail('conflict', `${u.key}: the current version lacks the kept bytes`);
      body.set(current.body.subarray(p.start, p.end), p.start);
    }
    for (const [at, bytes] of u.data) body.set(bytes, at);
    return this.#set(u.key, body, meta);
  }

  uploadDrop(id) {
    this.#uploads.delete(id);
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
