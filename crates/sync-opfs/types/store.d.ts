// `larder:vfs/store` as jco presents it to JavaScript: what a store lent
// to a composed app implements (see wit/larder.wit).

export type Condition = { tag: 'none' } | { tag: 'if-match'; val: string } | { tag: 'if-none-match' };

export type Metadata = [string, string][];

export interface ObjectInfo {
  key: string;
  size: bigint;
  etag: string;
  meta: Metadata;
}

/** A piece of a rewritten object: a range kept from its current version, or new bytes. */
export type Part = { tag: 'keep'; val: [bigint, bigint] } | { tag: 'data'; val: Uint8Array };

/** Failures are thrown as `{ tag: 'not-found' | 'conflict' | 'transient' | 'permanent', val: string }`.
 * The rest of `larder:vfs/store` (`listsMetadata`, `listKeys`, `headMany`,
 * `writesRanges`) the runner answers from these: a store's listing carries
 * metadata, and an upload rewrites the whole object. */
export interface Store {
  list(prefix: string): ObjectInfo[];
  head(key: string): ObjectInfo | undefined;
  get(key: string, range: [bigint, bigint] | undefined, cond: Condition): Uint8Array;
  put(key: string, body: Uint8Array, meta: Metadata, cond: Condition): string;
  putParts(key: string, parts: Part[], meta: Metadata, cond: Condition): string;
  copy(source: string, destination: string, meta: Metadata, cond: Condition): string;
  delete(key: string): void;
  enforcesConditions(): boolean;
  /** An upload (WIT resource `upload`), a piece at a time. `uploadBegin`
   * checks the key and returns the upload's number; pieces come in offset
   * order (kept ranges of the current version, new bytes) and what none
   * covers is zeros; `uploadFinish` replaces the object as `put` does. */
  uploadBegin(key: string, size: bigint): number;
  uploadKeep(upload: number, start: bigint, end: bigint): void;
  uploadWrite(upload: number, offset: bigint, data: Uint8Array): void;
  uploadFinish(upload: number, meta: Metadata, cond: Condition): string;
  /** Forgets an unfinished upload; nothing is written. */
  uploadDrop(upload: number): void;
}
