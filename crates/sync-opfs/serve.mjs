// A static server for pages running Larder: loopback only, with the
// cross-origin isolation headers shared memory needs.
//
//   node serve.mjs [--port N] URLPATH=DIR ...   (longest URL prefix wins)
//
// Prints `listening on http://127.0.0.1:PORT` once ready (port 0: any).

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export function serve(mounts, port = 0) {
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix.replace(/\/?$/, '/'), resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const server = createServer(async (req, res) => {
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cache-Control': 'no-store',
    };
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const hit = table.find(([prefix]) => path.startsWith(prefix) || `${path}/` === prefix);
    let file = hit && normalize(join(hit[1], path.slice(hit[0].length)));
    if (file && file !== hit[1] && !file.startsWith(hit[1] + sep)) file = undefined;
    try {
      if (file && (await stat(file)).isDirectory()) file = join(file, 'index.html');
      const st = file && (await stat(file));
      if (!st?.isFile()) throw new Error('not a file');
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': st.size });
      createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404, headers).end('not found\n');
    }
  });
  return new Promise((ok) => server.listen(port, '127.0.0.1', () => ok(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  let port = 8086;
  const mounts = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port') port = Number(args[++i]);
    else {
      const [prefix, dir] = args[i].split('=');
      if (!dir) throw new Error(`expected URLPATH=DIR, got ${args[i]}`);
      mounts[prefix] = dir;
    }
  }
  const server = await serve(mounts, port);
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
}
