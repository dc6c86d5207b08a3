// A JavaScript app that keeps state in files, built into a WASI 0.2
// component by ComponentizeJS: it walks a bundled config directory,
// counts its runs in a file it replaces atomically (written beside,
// synced, renamed over), and backs the config up by copying the tree.
// ComponentizeJS has no Node `fs`, so it calls wasi:filesystem itself.
// Its output is deterministic, so hosts compare it line by line.

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { getArguments } from 'wasi:cli/environment@0.2.12';

// Both are directories the host gives it (bundled by `larder compose`, or
// preopened with --dir).
const CONFIG = '/etc/app';
const STATE = '/state';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// An absolute path as (preopened directory, path relative to it): the
// longest preopen name that is a prefix, as wasi-libc resolves them.
function resolve(path) {
  let best = null;
  for (const [dir, name] of getDirectories()) {
    const base = name.replace(/\/+$/, '');
    if ((path === base || path.startsWith(base + '/')) &&
        (best === null || base.length > best.base.length)) {
      best = { dir, base };
    }
  }
  if (best === null) throw new Error(`no preopen holds ${path}`);
  const rel = path.slice(best.base.length).replace(/^\/+/, '');
  return [best.dir, rel === '' ? '.' : rel];
}

function open(path, openFlags, flags) {
  const [dir, rel] = resolve(path);
  return dir.openAt({ symlinkFollow: true }, rel, openFlags, flags);
}

function readText(path) {
  const fd = open(path, {}, { read: true });
  const [bytes] = fd.read(fd.stat().size, 0n);
  return decoder.decode(bytes);
}

function writeFile(path, bytes) {
  const fd = open(path, { create: true, truncate: true }, { write: true });
  let done = 0;
  while (done < bytes.length) {
    done += Number(fd.write(bytes.subarray(done), BigInt(done)));
  }
  fd.sync();
}

// Entries of a directory, sorted by name.
function list(path) {
  const stream = open(path, { directory: true }, { read: true }).readDirectory();
  const entries = [];
  for (let e = stream.readDirectoryEntry(); e !== undefined; e = stream.readDirectoryEntry()) {
    entries.push(e);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// Every directory under `path` (itself first), as os.walk gives them.
function walk(path, out = []) {
  const entries = list(path);
  const dirs = entries.filter((e) => e.type === 'directory').map((e) => e.name);
  const files = entries.filter((e) => e.type === 'regular-file').map((e) => e.name);
  out.push([path, dirs, files]);
  for (const d of dirs) walk(`${path}/${d}`, out);
  return out;
}

function mkdirs(path) {
  const [dir, rel] = resolve(path);
  try {
    dir.createDirectoryAt(rel);
  } catch (e) {
    if (e.payload !== 'exist') throw e;
  }
}

function copyTree(from, to) {
  mkdirs(to);
  for (const e of list(from)) {
    if (e.type === 'directory') {
      copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    } else if (e.type === 'regular-file') {
      const fd = open(`${from}/${e.name}`, {}, { read: true });
      const [bytes] = fd.read(fd.stat().size, 0n);
      writeFile(`${to}/${e.name}`, bytes);
    }
  }
}

function size(path) {
  const [dir, rel] = resolve(path);
  return Number(dir.statAt({ symlinkFollow: true }, rel).size);
}

export const run = {
  run() {
    console.log('args', JSON.stringify(getArguments().slice(1)));
    for (const [root, dirs, files] of walk(CONFIG)) {
      const sizes = files.map((f) => size(`${root}/${f}`));
      console.log('config', root, JSON.stringify(dirs), JSON.stringify(files), JSON.stringify(sizes));
    }
    const settings = Object.fromEntries(
      readText(`${CONFIG}/app.conf`)
        .split('\n')
        .filter((line) => line.includes('='))
        .map((line) => line.trim().split(/=(.*)/s).slice(0, 2)),
    );
    console.log('greeting', settings.greeting);

    let runs = 1;
    try {
      runs = Number(readText(`${STATE}/runs`)) + 1;
    } catch (e) {
      if (e.payload !== 'no-entry') throw e;
    }
    // Replaced atomically: written beside, synced, then renamed over.
    writeFile(`${STATE}/runs.tmp`, encoder.encode(String(runs)));
    const [dir, rel] = resolve(`${STATE}/runs.tmp`);
    dir.renameAt(rel, dir, resolve(`${STATE}/runs`)[1]);
    console.log('runs', runs);

    copyTree(CONFIG, `${STATE}/backup`);
    const copied = walk(`${STATE}/backup`).flatMap(([root, , files]) =>
      files.map((f) => `${root}/${f}`.slice(`${STATE}/backup/`.length)));
    console.log('backup', JSON.stringify(copied.sort()));
    console.log('state', JSON.stringify(list(STATE).map((e) => e.name)));
  },
};
