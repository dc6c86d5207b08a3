// The store call bridge. An app's `larder:vfs/store` imports are
// synchronous (jco calls them from inside wasm), while OPFS answers with
// promises in another worker. So the app worker posts each call to the OPFS
// worker and sleeps in `Atomics.wait` until the reply is in shared memory;
// replies larger than the buffer come in chunks, one wake-up each.

import { STORE_OPERATIONS, UPLOAD_OPERATIONS, fail } from './store-rules.js';

const OPERATIONS = [...STORE_OPERATIONS, ...UPLOAD_OPERATIONS];

const IDLE = 0;
const READY = 1;
const OK_VALUE = 0;
const OK_BYTES = 1;
const ERR = 2;

/** Shared memory for one bridge: control words and a reply buffer. */
export function bridgeMemory(bytes = 4 << 20) {
  return { control: new SharedArrayBuffer(16), buffer: new SharedArrayBuffer(bytes) };
}

// JSON with bigints (sizes) kept as bigints.
const encodeValue = (v) =>
  new TextEncoder().encode(JSON.stringify({ v }, (_, x) => (typeof x === 'bigint' ? { $n: x.toString() } : x)));
const decodeValue = (bytes) =>
  JSON.parse(new TextDecoder().decode(bytes), (_, x) => (x && typeof x.$n === 'string' ? BigInt(x.$n) : x)).v;

/** The app worker's side: an object with the store's functions, each
 * blocking until the OPFS worker answers (at most `timeoutMs`). */
export function storeClient(port, { control, buffer }, timeoutMs = 60_000) {
  const ctl = new Int32Array(control);
  const buf = new Uint8Array(buffer);
  let broken = null;

  const exchange = (message) => {
    Atomics.store(ctl, 0, IDLE);
    port.postMessage(message);
    Atomics.wait(ctl, 0, IDLE, timeoutMs);
    if (Atomics.load(ctl, 0) !== READY) {
      // A late reply would be taken for the next call's: stop here.
      broken = `the OPFS worker did not answer within ${timeoutMs / 1000} s`;
      fail('transient', broken);
    }
    return [ctl[1], ctl[2]];
  };

  const call = (op, args) => {
    if (broken) fail('transient', broken);
    let [total, n] = exchange({ op, args });
    const reply = new Uint8Array(total);
    reply.set(buf.subarray(0, n));
    for (let got = n; got < total; got += n) {
      [, n] = exchange({ more: true });
      reply.set(buf.subarray(0, n), got);
    }
    const body = reply.subarray(1);
    if (reply[0] === OK_BYTES) return body.slice();
    const value = decodeValue(body);
    if (reply[0] === ERR) throw value;
    return value;
  };

  const client = Object.fromEntries(OPERATIONS.map((op) => [op, (...args) => call(op, args)]));
  // Every store behind the bridge checks conditions itself.
  return { ...client, enforcesConditions: () => true };
}

/** The OPFS worker's side: answers `port`'s calls with `store`'s async
 * functions. Calls come one at a time (the caller is blocked). */
export function serveStore(port, { control, buffer }, store) {
  const ctl = new Int32Array(control);
  const buf = new Uint8Array(buffer);
  let reply = new Uint8Array();
  let sent = 0;

  const sendChunk = () => {
    const n = Math.min(buf.length, reply.length - sent);
    buf.set(reply.subarray(sent, sent + n));
    sent += n;
    ctl[1] = reply.length;
    ctl[2] = n;
    Atomics.store(ctl, 0, READY);
    Atomics.notify(ctl, 0);
  };

  const frame = (kind, body) => {
    const out = new Uint8Array(body.length + 1);
    out[0] = kind;
    out.set(body, 1);
    return out;
  };

  port.onmessage = async ({ data }) => {
    if (data.more) return sendChunk();
    try {
      if (!OPERATIONS.includes(data.op)) fail('permanent', `no store operation ${data.op}`);
      const v = await store[data.op](...data.args);
      reply = v instanceof Uint8Array ? frame(OK_BYTES, v) : frame(OK_VALUE, encodeValue(v));
    } catch (e) {
      const err = e && typeof e.tag === 'string' ? e : { tag: 'permanent', val: String(e?.message ?? e) };
      reply = frame(ERR, encodeValue(err));
    }
    sent = 0;
    sendChunk();
  };
}
