// Store operation scripts for the differential test: generated from a seed,
// applied to any `larder:vfs/store` implementation (sync or async), with
// results in a form two stores can be compared by (ETags by whether they
// changed, not by value).

// Keys the scripts use: files, nested files (whose parent `sub/` appears
// in a directory-based store by itself, so it is never used as a key), and
// directory markers without children.
const FILES = ['a', 'b.txt', 'sub/c', 'sub/deeper/d', 'ü n ✓'];
const DIRS = ['e/', 'f/'];
const BAD = ['', '/abs', 'x/../y', 'x//y', '.'];

export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A script of `n` operations from `seed`: plain data (for postMessage). */
export function script(seed, n) {
  const r = rng(seed);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const int = (k) => Math.floor(r() * k);
  const bytes = () => Array.from({ length: pick([0, 1, 7, 100, 3000]) }, () => int(256));
  const meta = () => [['mode', String(pick([0o100644, 0o100755, 0o120777]))], ['mtime', String(int(2e9))], ['uid', String(int(3))]];
  const cond = () => pick([{ tag: 'none' }, { tag: 'none' }, { tag: 'if-none-match' }, { tag: 'if-match' }, { tag: 'stale' }]);
  const key = () => (r() < 0.05 ? pick(BAD) : r() < 0.8 ? pick(FILES) : pick(DIRS));
  const range = () => (r() < 0.5 ? null : [int(4000), int(4000)].sort((x, y) => x - y));
  const ops = [];
  for (let i = 0; i < n; i++) {
    const op = pick(['put', 'put', 'put', 'putParts', 'upload', 'upload', 'get', 'head', 'list', 'copy', 'delete']);
    if (op === 'put') {
      // Directory markers carry no bytes (the mirror sends none).
      const k = key();
      ops.push({ op, key: k, body: k.endsWith('/') ? [] : bytes(), meta: meta(), cond: cond() });
    }
    else if (op === 'putParts') {
      const parts = Array.from({ length: 1 + int(3) }, () =>
        r() < 0.5 ? { tag: 'keep', val: [int(3000), int(3000)].sort((x, y) => x - y) } : { tag: 'data', val: bytes() },
      );
      ops.push({ op, key: pick(FILES), parts, meta: meta(), cond: cond() });
    } else if (op === 'upload') {
      // Pieces mostly in order with gaps (holes), now and then one that
      // overlaps or runs past the end; finished, or dropped unfinished.
      const steps = [];
      let at = 0;
      for (let k = int(5); k > 0; k--) {
        const start = r() < 0.05 ? int(at + 1) : at + int(300);
        const end = start + int(700);
        steps.push(r() < 0.4 ? { keep: [start, end] } : { at: start, bytes: Array.from({ length: end - start }, () => int(256)) });
        at = end;
      }
      const size = r() < 0.9 ? at + int(500) : int(at + 1);
      const k = r() < 0.05 ? pick(BAD) : pick(FILES);
      ops.push({ op, key: k, size, steps, finish: r() < 0.85, meta: meta(), cond: cond() });
    } else if (op === 'get') ops.push({ op, key: key(), range: range(), cond: cond() });
    else if (op === 'head' || op === 'delete') ops.push({ op, key: key() });
    else if (op === 'list') ops.push({ op, prefix: pick(['', 'sub/', 'b', 'e/', 'zz']) });
    else ops.push({ op, source: pick(FILES), destination: pick(FILES), meta: meta(), cond: cond() });
  }
  return ops;
}

/** Applies `ops` to `store`; one comparable result per operation. */
export async function apply(store, ops) {
  const etags = new Map(); // key -> ETag last seen
  const seen = (key, etag) => {
    const changed = etags.get(key) !== etag;
    etags.set(key, etag);
    return changed ? 'new-etag' : 'same-etag';
  };
  const cond = (key, c) =>
    c.tag === 'if-match' ? { tag: 'if-match', val: etags.get(key) ?? '"none"' } : c.tag === 'stale' ? { tag: 'if-match', val: '"stale"' } : c;
  const info = (i) => i && { key: i.key, size: Number(i.size), etag: seen(i.key, i.etag), meta: Object.fromEntries(i.meta) };
  const out = [];
  for (const o of ops) {
    try {
      let v;
      if (o.op === 'put') v = seen(o.key, await store.put(o.key, new Uint8Array(o.body), o.meta, cond(o.key, o.cond)));
      else if (o.op === 'putParts') {
        const parts = o.parts.map((p) => (p.tag === 'keep' ? { tag: 'keep', val: p.val.map(BigInt) } : { tag: 'data', val: new Uint8Array(p.val) }));
        v = seen(o.key, await store.putParts(o.key, parts, o.meta, cond(o.key, o.cond)));
      } else if (o.op === 'upload') {
        const id = await store.uploadBegin(o.key, BigInt(o.size));
        try {
          for (const s of o.steps) {
            if (s.keep) await store.uploadKeep(id, BigInt(s.keep[0]), BigInt(s.keep[1]));
            else await store.uploadWrite(id, BigInt(s.at), new Uint8Array(s.bytes));
          }
          v = o.finish ? seen(o.key, await store.uploadFinish(id, o.meta, cond(o.key, o.cond))) : 'dropped';
        } finally {
          await store.uploadDrop(id);
        }
      } else if (o.op === 'get') v = Array.from(await store.get(o.key, o.range && o.range.map(BigInt), cond(o.key, o.cond)));
      else if (o.op === 'head') v = info(await store.head(o.key)) ?? null;
      else if (o.op === 'list') v = (await store.list(o.prefix)).filter((i) => !i.key.startsWith('sub/') || !i.key.endsWith('/')).map(info);
      else if (o.op === 'copy') v = seen(o.destination, await store.copy(o.source, o.destination, o.meta, cond(o.destination, o.cond)));
      else v = (await store.delete(o.key)) ?? null;
      out.push({ ok: v });
    } catch (e) {
      if (typeof e?.tag !== 'string') throw e;
      out.push({ err: e.tag });
    }
  }
  return out;
}
