// Runs a jco-transpiled command component once, the same way in a browser
// worker and on Node: WASI from jco's preview2-shim (its browser build),
// with blocking timers, stdio to callbacks, and `larder:vfs/store` from the
// caller.

import { blockingPoll } from './blocking.js';
import { STORE_OPERATIONS, derivedFunctions, uploadClass } from './store-rules.js';

const STORE_FUNCTIONS = [...STORE_OPERATIONS, 'enforcesConditions'];
const blocking = new WeakMap();

/** The import object for `instantiate`: each interface by its name, at
 * whatever version the component asks for. */
function imports(shim, cli, store) {
  if (!blocking.has(shim.io)) blocking.set(shim.io, blockingPoll(shim.io));
  const { poll, monotonicClock } = blocking.get(shim.io);
  const byName = {
    'wasi:cli/environment': cli.environment,
    'wasi:cli/exit': cli.exit,
    'wasi:cli/stdin': cli.stdin,
    'wasi:cli/stdout': cli.stdout,
    'wasi:cli/stderr': cli.stderr,
    'wasi:cli/terminal-input': cli.terminalInput,
    'wasi:cli/terminal-output': cli.terminalOutput,
    'wasi:cli/terminal-stdin': cli.terminalStdin,
    'wasi:cli/terminal-stdout': cli.terminalStdout,
    'wasi:cli/terminal-stderr': cli.terminalStderr,
    'wasi:clocks/monotonic-clock': monotonicClock,
    'wasi:clocks/wall-clock': shim.clocks.wallClock,
    'wasi:io/error': shim.io.error,
    'wasi:io/poll': poll,
    'wasi:io/streams': shim.io.streams,
    'wasi:random/random': shim.random.random,
    'wasi:random/insecure': shim.random.insecure,
    'wasi:random/insecure-seed': shim.random.insecureSeed,
    // jco calls these unbound; a class instance's methods need their `this`.
    'larder:vfs/store': {
      ...Object.fromEntries(STORE_FUNCTIONS.map((f) => [f, store[f].bind(store)])),
      ...derivedFunctions(store),
      Upload: uploadClass(store),
    },
  };
  const unversioned = (k) => String(k).split('@')[0];
  return new Proxy(byName, {
    get: (t, k) => t[unversioned(k)],
    has: (t, k) => unversioned(k) in t,
  });
}

// stdout/stderr as callbacks taking each write's bytes.
const sink = (write) => ({ write, flush() {}, blockingFlush() {} });

/**
 * Instantiates `component` (a transpiled module's namespace, from jco
 * `--instantiation async`) and calls its `wasi:cli/run`. Resolves to the
 * exit status: 0, the code given to `exit`, or 1 if `run` returned an
 * error. A trap rejects.
 */
export async function runCommand(component, getCoreModule, shim, { args, env = {}, stdout, stderr, store }) {
  const cli = shim.cli.createCli({
    arguments: args,
    environment: env,
    stdout: sink(stdout),
    stderr: sink(stderr),
  });
  const root = await component.instantiate(getCoreModule, imports(shim, cli, store));
  try {
    root.run.run();
    return 0;
  } catch (e) {
    if (e?.exitError) return e.code;
    // `run` returned `err`: jco throws it as a ComponentError.
    if (e && Object.hasOwn(e, 'payload')) return 1;
    throw e;
  }
}
