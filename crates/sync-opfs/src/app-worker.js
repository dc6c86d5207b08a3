// The worker an app runs in: jco's code blocks here (store calls wait on
// the bridge), never on the page's thread. One component module, compiled
// once; each run is a fresh instance, restored from the store.

import * as cli from '@bytecodealliance/preview2-shim/cli';
import * as clocks from '@bytecodealliance/preview2-shim/clocks';
import * as io from '@bytecodealliance/preview2-shim/io';
import * as random from '@bytecodealliance/preview2-shim/random';
import { storeClient } from './bridge.js';
import { runCommand } from './run.js';

const shim = { cli, clocks, io, random };
let app;

async function load(componentUrl, port, memory) {
  const component = await import(componentUrl);
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) modules.set(name, WebAssembly.compileStreaming(fetch(new URL(name, componentUrl))));
    return modules.get(name);
  };
  return { component, getCoreModule, store: storeClient(port, memory) };
}

onmessage = async ({ data }) => {
  if (data.load) {
    try {
      app = await load(data.load.component, data.load.port, data.load.memory);
      postMessage({ loaded: true });
    } catch (e) {
      postMessage({ failed: `cannot load ${data.load.component}: ${e.message ?? e}` });
    }
    return;
  }
  const { run } = data;
  const stream = (name) => (bytes) => postMessage({ id: run.id, [name]: bytes.slice() });
  try {
    const code = await runCommand(app.component, app.getCoreModule, shim, {
      args: run.argv,
      env: run.env,
      store: app.store,
      stdout: stream('stdout'),
      stderr: stream('stderr'),
    });
    postMessage({ id: run.id, code });
  } catch (e) {
    postMessage({ id: run.id, trap: String(e?.stack ?? e) });
  }
};
