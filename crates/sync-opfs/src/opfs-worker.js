// The worker that owns the app's files in OPFS: it holds the origin's Web
// Lock for its store for as long as it lives (so one tab writes at a time),
// and answers the app worker's store calls over the bridge.

import { serveStore } from './bridge.js';
import { OpfsStore } from './opfs-store.js';

onmessage = async ({ data: { root, port, memory, pauseInPut } }) => {
  const store = await OpfsStore.open(root).catch((e) => e);
  if (store instanceof Error) {
    postMessage({ failed: `cannot open OPFS directory ${root}: ${store.message}` });
    return;
  }
  // For the tests: stop part way through writing `pauseInPut`, tell the
  // page, and wait to be terminated.
  if (pauseInPut) {
    store.midPut = (key) => {
      if (key !== pauseInPut) return undefined;
      postMessage({ paused: key });
      return new Promise(() => {});
    };
  }
  navigator.locks.request(`larder:${root}`, { ifAvailable: true }, (lock) => {
    if (!lock) {
      postMessage({ locked: true });
      return undefined;
    }
    serveStore(port, memory, store);
    postMessage({ ready: true });
    // Held until this worker ends (closed, terminated, or its tab gone).
    return new Promise(() => {});
  });
};
