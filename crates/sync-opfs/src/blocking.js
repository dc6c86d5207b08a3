// Timers that block. jco's browser shim answers `poll` and
// `pollable.block` with promises, for JSPI builds; called synchronously, as
// in this package's builds, a sleep returns at once and `poll` on a timer
// returns nothing. Apps and the sync engine (which backs off between
// retries) need real sleeps. A worker may block, so here timers are
// deadlines and waiting is `Atomics.wait` on memory nobody signals.

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const nowNs = () => BigInt(Math.floor(performance.now() * 1e6));

function sleepUntil(deadline) {
  for (let left = deadline - nowNs(); left > 0n; left = deadline - nowNs()) {
    Atomics.wait(sleeper, 0, 0, Math.max(1, Number(left / 1_000_000n)));
  }
}

/** `wasi:clocks/monotonic-clock` and `wasi:io/poll` on the shim's own
 * `Pollable` class (so streams' pollables mix with these in one `poll`),
 * with `block` made blocking for every pollable of that class. */
export function blockingPoll(io) {
  const { Pollable } = io.poll;
  const deadlines = new WeakMap();

  const timer = (deadline) => {
    const p = io.pollableCreate({ ready: () => nowNs() >= deadline, wait: () => Promise.resolve() });
    deadlines.set(p, deadline);
    return p;
  };

  // What a pollable that is not ready waits for: its deadline, or (others:
  // the shim's stream pollables, ready whenever they can be) a short nap.
  const nap = (list) => {
    const ds = list.map((p) => deadlines.get(p)).filter((d) => d !== undefined);
    sleepUntil(ds.length ? ds.reduce((a, b) => (a < b ? a : b)) : nowNs() + 10_000_000n);
  };

  Pollable.prototype.block = function block() {
    while (!this.ready()) nap([this]);
  };

  const poll = (list) => {
    if (list.length === 0) throw new Error('poll list must not be empty');
    for (;;) {
      const ready = [];
      list.forEach((p, i) => p.ready() && ready.push(i));
      if (ready.length) return new Uint32Array(ready);
      nap(list);
    }
  };

  const monotonicClock = {
    resolution: () => 1_000_000n,
    now: nowNs,
    subscribeInstant: (instant) => timer(instant),
    subscribeDuration: (duration) => timer(nowNs() + duration),
  };
  return { poll: { Pollable, poll }, monotonicClock };
}
