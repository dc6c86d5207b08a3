// What every store behind `larder:vfs/store` agrees on, whatever keeps the
// bytes: key rules, conditions, ranges, key order and the errors' shape.
// The Rust stores (crates/larder-sync) are the reference for all of it.

/** The functions of `larder:vfs/store` that reach the store (beside
 * `enforcesConditions`, which every store here answers `true`). */
export const STORE_OPERATIONS = ['list', 'head', 'get', 'put', 'putParts', 'copy', 'delete'];

/** The functions of `larder:vfs/store` answered from the others, alike
 * for every store here: listings carry metadata (so the mirror keeps no
 * index and never lists keys alone), and an upload rewrites the whole
 * object (so changed files are sent whole or in parts, not as ranges). */
export function derivedFunctions(store) {
  return {
    listsMetadata: () => true,
    writesRanges: () => false,
    listKeys: (prefix) =>
      store.list(prefix).map(({ key, size, etag }) => ({ key, size, etag, modified: undefined })),
    headMany: (keys) => keys.map((k) => store.head(k)).filter((o) => o != null),
  };
}

/** What a store implements for the `upload` resource (see `uploadClass`):
 * an upload is a number from `uploadBegin`, which checks the key only. */
export const UPLOAD_OPERATIONS = ['uploadBegin', 'uploadKeep', 'uploadWrite', 'uploadFinish', 'uploadDrop'];

/** Throws the WIT `error` variant. jco turns a thrown non-Error object into
 * the `err` of the import's result; a thrown `Error` would trap the app. */
export function fail(tag, message) {
  throw { tag, val: message };
}

/** Runs `f`, turning anything it throws that is not already a store error
 * into one (`permanent` unless `transient` says otherwise). */
export async function asStoreError(f, transient = () => false) {
  try {
    return await f();
  } catch (e) {
    if (e && typeof e.tag === 'string' && 'val' in e) throw e;
    const message = e && e.message ? `${e.name}: ${e.message}` : String(e);
    fail(transient(e) ? 'transient' : 'permanent', message);
  }
}

/** The path components of `key` (a trailing `/` marks a directory key);
 * refuses keys that would not be a path under the store's root. */
export function components(key) {
  const rel = key.endsWith('/') ? key.slice(0, -1) : key;
  const parts = rel.split('/');
  if (!rel || parts.some((c) => c === '' || c === '.' || c === '..')) {
    fail('permanent', `key ${JSON.stringify(key)} cannot be a path under the store`);
  }
  return parts;
}

/** `cond` against the object's current ETag (`undefined`: no object). */
export function check(key, cond, current) {
  const holds =
    cond.tag === 'none' ||
    (cond.tag === 'if-match' && current === cond.val) ||
    (cond.tag === 'if-none-match' && current === undefined);
  if (!holds) fail('conflict', `${key}: changed by another writer`);
}

/** `range` (bigints, end exclusive) clamped to `size`, as numbers. */
export function clamp(range, size) {
  if (!range) return [0, size];
  const start = Math.min(Number(range[0]), size);
  const end = Math.max(start, Math.min(Number(range[1]), size));
  return [start, end];
}

/** Key order as the Rust stores sort: by code point, which is UTF-8 byte
 * order (JavaScript's `<` compares UTF-16 units, which differs above the
 * BMP). */
export function compareKeys(a, b) {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return p.done === q.done ? 0 : p.done ? -1 : 1;
    const d = p.value.codePointAt(0) - q.value.codePointAt(0);
    if (d) return d;
  }
}

/** Concatenates `parts`, kept ranges taken (clamped) from `current`. */
export function assemble(parts, current) {
  const pieces = parts.map((p) => {
    if (p.tag === 'data') return p.val;
    const [start, end] = clamp(p.val, current.length);
    return current.subarray(start, end);
  });
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An upload's pieces as they arrive, checked as the Rust hosts check
 * them: each starts at or after the end of the one before and ends within
 * the object; what none covers is zeros. `list` holds the non-empty ones
 * as numbers: `{ keep, start, end }`. */
export class UploadPieces {
  #at = 0n;
  list = [];

  constructor(size) {
    this.size = BigInt(size);
    if (this.size > BigInt(Number.MAX_SAFE_INTEGER)) {
      fail('permanent', `upload: ${this.size} bytes is more than this store holds`);
    }
  }

  add(keep, start, end) {
    [start, end] = [BigInt(start), BigInt(end)];
    if (start < this.#at) {
      fail('permanent', `upload: a piece at ${start} overlaps or precedes the one ending at ${this.#at}`);
    }
    if (end < start || end > this.size) {
      fail('permanent', `upload: a piece ${start}..${end} is not within the object's ${this.size} bytes`);
    }
    this.#at = end;
    if (end > start) this.list.push({ keep, start: Number(start), end: Number(end) });
  }
}

const symbolDispose = Symbol.dispose || Symbol.for('dispose');

/** jco's `Upload` resource class on `store`'s upload operations. The upload
 * begins at its first call, so a bad key comes back as that call's `err`
 * (a constructor cannot fail). */
export function uploadClass(store) {
  return class Upload {
    #key;
    #size;
    #id;

    constructor(key, size) {
      this.#key = key;
      this.#size = size;
    }

    #begun() {
      this.#id ??= store.uploadBegin(this.#key, this.#size);
      return this.#id;
    }

    keep(start, end) {
      store.uploadKeep(this.#begun(), start, end);
    }

    write(offset, data) {
      store.uploadWrite(this.#begun(), offset, data);
    }

    finish(meta, cond) {
      return store.uploadFinish(this.#begun(), meta, cond);
    }

    [symbolDispose]() {
      // A drop cannot fail: an upload the store lost is gone anyway.
      if (this.#id !== undefined) {
        try {
          store.uploadDrop(this.#id);
        } catch {}
      }
    }
  };
}

export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;

/** s3fs-style metadata for an object some other writer left without any
 * (the page's own script, say): what the Rust stores default to. */
export function defaultMeta(isDir, mtimeMs) {
  const secs = Math.floor(mtimeMs / 1000);
  return [
    ['gid', '0'],
    ['larder-mtime-ns', String(Math.floor(mtimeMs % 1000) * 1_000_000)],
    ['mode', String(isDir ? S_IFDIR | 0o755 : S_IFREG | 0o644)],
    ['mtime', String(secs)],
    ['uid', '0'],
  ];
}
