// Runs a composed app on Node.js through jco, with a store in this process
// (a MemoryStore, or any object with the store's functions): the same
// transpiled component and WASI shim the browser runs.

import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { runCommand } from './run.js';

// The shim's browser build: plain JavaScript, with stdio as callbacks (its
// Node build writes to the process's own stdio).
async function browserShim() {
  const main = new URL(import.meta.resolve('@bytecodealliance/preview2-shim'));
  const dir = new URL('../browser/', main);
  const load = (name) => import(new URL(`${name}.js`, dir));
  const [cli, clocks, io, random] = await Promise.all(['cli', 'clocks', 'io', 'random'].map(load));
  return { cli, clocks, io, random };
}

/** Loads the transpiled component at `jsPath` (jco `--instantiation async`);
 * `run(argv, { store, env })` (argv with the program's name first) resolves
 * to `{ code, stdout, stderr }`. */
export async function loadComponent(jsPath) {
  const url = pathToFileURL(jsPath);
  const [component, shim] = await Promise.all([import(url), browserShim()]);
  const modules = new Map();
  const getCoreModule = async (name) => {
    if (!modules.has(name)) modules.set(name, readFile(new URL(name, url)).then((b) => WebAssembly.compile(b)));
    return modules.get(name);
  };
  return {
    async run(argv, { store, env = {} }) {
      const out = [];
      const err = [];
      const text = (chunks) => Buffer.concat(chunks).toString('utf8');
      let code;
      try {
        code = await runCommand(component, getCoreModule, shim, {
          args: argv,
          env,
          store,
          stdout: (b) => out.push(b.slice()),
          stderr: (b) => err.push(b.slice()),
        });
      } catch (e) {
        const trap = new Error(`the app trapped: ${e.message}\n${text(err)}`);
        Object.assign(trap, { stdout: text(out), stderr: text(err) });
        throw trap;
      }
      return { code, stdout: text(out), stderr: text(err) };
    },
  };
}
