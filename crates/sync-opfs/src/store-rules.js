// What every store behind `larder:vfs/store` agrees on, whatever keeps the
// bytes: key rules, conditions, ranges, key order and the errors' shape.
// The Rust stores (crates/larder-sync) are the reference for all of it.

/** The functions of `larder:vfs/store` that reach the store (beside
 * `enforcesConditions`, which every store here answers `true`). */
export const STORE_OPERATIONS = ['list', 'head', 'get', 'put', 'putParts', 'copy', 'delete'];

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
