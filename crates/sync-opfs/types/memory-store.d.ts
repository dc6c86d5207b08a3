import type { Store } from './store.js';

/** `larder:vfs/store` in memory (for Node.js runs and tests). */
export class MemoryStore implements Store {
  /** Every key with its bytes and metadata, in key order. */
  contents(): { key: string; body: Uint8Array; meta: Record<string, string> }[];
  list: Store['list'];
  head: Store['head'];
  get: Store['get'];
  put: Store['put'];
  putParts: Store['putParts'];
  copy: Store['copy'];
  delete: Store['delete'];
  enforcesConditions: Store['enforcesConditions'];
  uploadBegin: Store['uploadBegin'];
  uploadKeep: Store['uploadKeep'];
  uploadWrite: Store['uploadWrite'];
  uploadFinish: Store['uploadFinish'];
  uploadDrop: Store['uploadDrop'];
}
