// `larder:vfs/store` on the Origin Private File System, in the 1:1 layout
// of the other stores: object `notes/a.txt` is the file `<root>/notes/a.txt`,
// a `dir/` key is a directory, so the page's own script reads the app's files
// where it expects them. OPFS keeps no modes, owners or nanosecond times, so
// each object's metadata and ETag live in a sidecar file in `<root>.meta/`
// (one flat directory, names percent-encoded), which also names the data
// version it describes (size and last-modified time). A sidecar that does
// not match its file (a crash between the two writes, or the page's script
// rewrote the file) is ignored: the object then reads as a plain file with
// a version tag of its own, as a file another tool put in a local store.
//
// Bytes are replaced with `createWritable`, which writes a swap file and
// swaps it in on `close()`: a reader (or a later session, after the worker
// was killed mid-write) sees the old file or the new one, never a mix.

import {
  assemble,
  asStoreError,
  check,
  clamp,
  compareKeys,
  components,
  defaultMeta,
  fail,
  UploadPieces,
} from './store-rules.js';

// Bytes moved at a time from a spool or the current file in an upload.
const CHUNK = 4 << 20;

// Chromium's in-progress `createWritable` swap files.
const SWAP_SUFFIX = '.crswap';

const isNotFound = (e) => e && (e.name === 'NotFoundError' || e.name === 'TypeMismatchError');
// Quota and lock contention may pass; a bad name or a broken profile will not.
const isTransient = (e) => e && (e.name === 'QuotaExceededError' || e.name === 'NoModificationAllowedError');

export class OpfsStore {
  /** Opens (creating) the store at OPFS directory `root`. */
  static async open(root = 'larder', opfs = navigator.storage) {
    const top = await opfs.getDirectory();
    const data = await top.getDirectoryHandle(root, { create: true });
    const meta = await top.getDirectoryHandle(`${root}.meta`, { create: true });
    // Uploads' new bytes wait here until `finish`; what a killed worker
    // left is of no use to anyone.
    const spool = await top.getDirectoryHandle(`${root}.spool`, { create: true });
    for await (const name of spool.keys()) await spool.removeEntry(name).catch(() => {});
    return new OpfsStore(data, meta, spool);
  }

  #data;
  #meta;
  #spool;
  #seq = 0;
  #uploads = new Map();
  #nextUpload = 0;
  // Sidecars as last read or written (null: none). Only this worker writes
  // them while it holds the lock, so what it remembers stays true, and each
  // OPFS call saved is a round trip to the browser process (about 1-4 ms).
  #records = new Map();
  /** Test hook: called with the key after half the bytes of a put are
   * written, before the swap; may never return. */
  midPut = null;

  constructor(data, meta, spool) {
    this.#data = data;
    this.#meta = meta;
    this.#spool = spool;
  }

  /** The directory holding `parts` (created with `create`), or null. */
  async #dir(parts, create = false) {
    let d = this.#data;
    for (const name of parts) {
      try {
        d = await d.getDirectoryHandle(name, { create });
      } catch (e) {
        if (isNotFound(e) && !create) return null;
        throw e;
      }
    }
    return d;
  }

  /** The entry `key` names, of the kind its key says, or null. */
  async #entry(key) {
    const parts = components(key);
    const parent = await this.#dir(parts.slice(0, -1));
    if (!parent) return null;
    const name = parts[parts.length - 1];
    try {
      if (key.endsWith('/')) return { dir: await parent.getDirectoryHandle(name), parent, name };
      const handle = await parent.getFileHandle(name);
      return { handle, file: await handle.getFile(), parent, name };
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async #sidecar(key, handle) {
    if (this.#records.has(key)) return this.#records.get(key);
    let record = null;
    try {
      const h = handle ?? (await this.#meta.getFileHandle(encodeURIComponent(key)));
      record = JSON.parse(await (await h.getFile()).text());
    } catch (e) {
      if (!(isNotFound(e) || e instanceof SyntaxError)) throw e;
    }
    this.#records.set(key, record);
    return record;
  }

  /** What `head` answers for `entry` with `sidecar` (null: none found). */
  #info(key, entry, sidecar) {
    if (entry.dir) {
      if (sidecar?.kind === 'dir') return { key, size: 0n, etag: sidecar.etag, meta: sidecar.meta };
      return { key, size: 0n, etag: '"d"', meta: defaultMeta(true, 0) };
    }
    const { size, lastModified } = entry.file;
    if (sidecar?.kind === 'file' && sidecar.size === size && sidecar.modified === lastModified) {
      return { key, size: BigInt(size), etag: sidecar.etag, meta: sidecar.meta };
    }
    return { key, size: BigInt(size), etag: `"f${size}-${lastModified}"`, meta: defaultMeta(false, lastModified) };
  }

  /** What `head` answers for `entry` (null: no object). */
  async #current(key, entry) {
    return entry && this.#info(key, entry, await this.#sidecar(key));
  }

  async #head(key) {
    return this.#current(key, await this.#entry(key));
  }

  async #writeSidecar(key, record) {
    const h = await this.#meta.getFileHandle(encodeURIComponent(key), { create: true });
    const w = await h.createWritable();
    await w.write(JSON.stringify(record));
    await w.close();
    this.#records.set(key, record);
  }

  async #removeSidecar(key) {
    try {
      await this.#meta.removeEntry(encodeURIComponent(key));
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.#records.set(key, null);
  }

  #etag(size) {
    const r = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
    return `"o${Date.now().toString(36)}-${(this.#seq++).toString(36)}-${size.toString(36)}-${r}"`;
  }

  /** Replaces `key` (now `existing`, from `#entry`) with `meta` and, for a
   * file, what `fill(writable)` writes; the condition has been checked. */
  async #write(key, fill, meta, existing) {
    const parts = components(key);
    const parent = await this.#dir(parts.slice(0, -1), true);
    const name = parts[parts.length - 1];
    if (key.endsWith('/')) {
      // A file where the directory goes (a kind change) was deleted first by
      // the mirror; one left by someone else gives way.
      try {
        await parent.getFileHandle(name);
        await parent.removeEntry(name);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      await parent.getDirectoryHandle(name, { create: true });
      const etag = this.#etag(0);
      await this.#writeSidecar(key, { kind: 'dir', etag, meta });
      return etag;
    }
    // A directory where the file goes must be empty (its objects went first).
    if (!existing) {
      try {
        await parent.getDirectoryHandle(name);
        await parent.removeEntry(name);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    const handle = existing?.handle ?? (await parent.getFileHandle(name, { create: true }));
    const w = await handle.createWritable({ keepExistingData: false });
    try {
      await fill(w);
      await w.close();
    } catch (e) {
      await w.abort().catch(() => {});
      // A file created for this write goes with it.
      if (!existing) await parent.removeEntry(name).catch(() => {});
      throw e;
    }
    const file = await handle.getFile();
    const etag = this.#etag(file.size);
    await this.#writeSidecar(key, { kind: 'file', size: file.size, modified: file.lastModified, etag, meta });
    return etag;
  }

  /** `#write`'s fill for a whole body (paused half way for `midPut`). */
  #body(key, body) {
    return async (w) => {
      if (!this.midPut) return w.write(body);
      const half = body.length >> 1;
      await w.write(body.subarray(0, half));
      await this.midPut(key);
      await w.write(body.subarray(half));
    };
  }

  async list(prefix) {
    return asStoreError(async () => {
      const sidecars = new Map();
      for await (const [name, h] of this.#meta.entries()) {
        if (h.kind === 'file') sidecars.set(decodeURIComponent(name), h);
      }
      for (const key of this.#records.keys()) if (!sidecars.has(key)) this.#records.set(key, null);
      const found = [];
      const walk = async (dir, rel) => {
        for await (const [name, h] of dir.entries()) {
          if (name.endsWith(SWAP_SUFFIX)) continue;
          if (h.kind === 'directory') {
            const key = `${rel}${name}/`;
            found.push({ key, entry: { dir: h } });
            await walk(h, key);
          } else {
            found.push({ key: rel + name, entry: { handle: h } });
          }
        }
      };
      await walk(this.#data, '');
      const wanted = found.filter(({ key }) => key.startsWith(prefix));
      const infos = await Promise.all(
        wanted.map(async ({ key, entry }) => {
          if (entry.handle) entry.file = await entry.handle.getFile();
          const h = sidecars.get(key);
          return this.#info(key, entry, h ? await this.#sidecar(key, h) : null);
        }),
      );
      return infos.sort((a, b) => compareKeys(a.key, b.key));
    }, isTransient);
  }

  async head(key) {
    return asStoreError(() => this.#head(key), isTransient);
  }

  async get(key, range, cond) {
    return asStoreError(async () => {
      const entry = await this.#entry(key);
      if (!entry) fail('not-found', key);
      check(key, cond, (await this.#current(key, entry)).etag);
      if (entry.dir) return new Uint8Array();
      // `entry.file` is a snapshot: if the file is replaced meanwhile, reading
      // it fails (NotReadableError) rather than mixing two versions.
      const [start, end] = clamp(range, entry.file.size);
      return new Uint8Array(await entry.file.slice(start, end).arrayBuffer());
    }, (e) => isTransient(e) || e?.name === 'NotReadableError');
  }

  async put(key, body, meta, cond) {
    return asStoreError(async () => {
      const entry = await this.#entry(key);
      check(key, cond, (await this.#current(key, entry))?.etag);
      return this.#write(key, this.#body(key, body), meta, entry);
    }, isTransient);
  }

  async putParts(key, parts, meta, cond) {
    return asStoreError(async () => {
      const entry = await this.#entry(key);
      check(key, cond, (await this.#current(key, entry))?.etag);
      const bytes = entry?.file && parts.some((p) => p.tag === 'keep')
        ? new Uint8Array(await entry.file.arrayBuffer())
        : new Uint8Array();
      return this.#write(key, this.#body(key, assemble(parts, bytes)), meta, entry);
    }, isTransient);
  }

  // Uploads: new bytes go to a spool file at their own offsets as they
  // come; `finish` copies kept ranges from the current file and new ones
  // from the spool into the replacement, 4 MiB at a time, so no upload is
  // ever held whole in memory.

  async uploadBegin(key, size) {
    return asStoreError(() => {
      components(key);
      const id = this.#nextUpload++;
      this.#uploads.set(id, { key, pieces: new UploadPieces(size), name: `u${id}`, handle: null, writer: null });
      return id;
    });
  }

  #upload(id) {
    const u = this.#uploads.get(id);
    if (!u) fail('permanent', `upload ${id}: finished, dropped or never begun`);
    return u;
  }

  async uploadKeep(id, start, end) {
    return asStoreError(() => this.#upload(id).pieces.add(true, start, end));
  }

  async uploadWrite(id, offset, data) {
    return asStoreError(async () => {
      const u = this.#upload(id);
      u.pieces.add(false, offset, BigInt(offset) + BigInt(data.length));
      if (!u.writer) {
        u.handle = await this.#spool.getFileHandle(u.name, { create: true });
        u.writer = await u.handle.createWritable({ keepExistingData: false });
      }
      await u.writer.write({ type: 'write', position: Number(offset), data });
    }, isTransient);
  }

  async uploadFinish(id, meta, cond) {
    return asStoreError(async () => {
      const u = this.#upload(id);
      this.#uploads.delete(id);
      try {
        if (u.writer) await u.writer.close();
        u.writer = null;
        const spooled = u.handle && (await u.handle.getFile());
        const entry = await this.#entry(u.key);
        check(u.key, cond, (await this.#current(u.key, entry))?.etag);
        if (u.pieces.list.some((p) => p.keep && !(entry?.file?.size >= p.end))) {
          fail('conflict', `${u.key}: the current version lacks the kept bytes`);
        }
        const fill = async (w) => {
          for (const p of u.pieces.list) {
            const from = p.keep ? entry.file : spooled;
            for (let at = p.start; at < p.end; at += CHUNK) {
              const end = Math.min(p.end, at + CHUNK);
              const data = new Uint8Array(await from.slice(at, end).arrayBuffer());
              await w.write({ type: 'write', position: at, data });
            }
          }
          await w.truncate(Number(u.pieces.size));
        };
        return await this.#write(u.key, fill, meta, entry);
      } finally {
        await this.#discard(u);
      }
    }, (e) => isTransient(e) || e?.name === 'NotReadableError');
  }

  async uploadDrop(id) {
    const u = this.#uploads.get(id);
    this.#uploads.delete(id);
    if (u) await this.#discard(u);
  }

  async #discard(u) {
    if (u.writer) await u.writer.abort().catch(() => {});
    if (u.handle) await this.#spool.removeEntry(u.name).catch(() => {});
  }

  async copy(source, destination, meta, cond) {
    const body = await this.get(source, undefined, { tag: 'none' });
    return this.put(destination, body, meta, cond);
  }

  async delete(key) {
    return asStoreError(async () => {
      const entry = await this.#entry(key);
      if (entry) {
        try {
          await entry.parent.removeEntry(entry.name);
        } catch (e) {
          // Other files still inside: the directory stays for them, as a
          // prefix stays in S3; only the marker's metadata goes.
          if (!(entry.dir && e.name === 'InvalidModificationError')) throw e;
        }
      }
      await this.#removeSidecar(key);
    }, isTransient);
  }

  enforcesConditions() {
    return true;
  }
}
