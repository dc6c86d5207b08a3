// Types for `@larder/sync-opfs`: a Larder-composed app in a web page, its
// files kept in the Origin Private File System.

/** Another tab or window of this site has the filesystem open. */
export class LarderLockedError extends Error {
  name: 'LarderLockedError';
}

/** What one run of the app printed, and how it ended. */
export interface RunResult {
  /** The app's exit status (0 for success). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Environment variables the app sees. */
  env?: Record<string, string>;
  /** Called with stdout text as the app writes it. */
  onStdout?: (text: string) => void;
  /** Called with stderr text as the app writes it. */
  onStderr?: (text: string) => void;
}

export interface Larder {
  /**
   * Runs the app once with `argv` (its name first) in a fresh instance,
   * after the previous run ends. Rejects if the app traps.
   */
  run(argv: string[], options?: RunOptions): Promise<RunResult>;
  /** Resolves with the key when the store has paused in a put (tests). */
  paused(): Promise<string>;
  /** Ends both workers at once; a run in progress stops, the lock is released. */
  terminate(): void;
}

export interface OpenOptions {
  /** The JavaScript jco wrote for the composed app (`--instantiation async`). */
  component: string;
  /** The OPFS directory holding the files (default `larder`). */
  root?: string;
  /** For tests: the store stops half way through writing this key. */
  pauseInPut?: string;
}

/**
 * Opens the filesystem kept in OPFS and loads the app. Needs a
 * cross-origin isolated page; rejects with `LarderLockedError` while
 * another tab has the same `root` open.
 */
export function openLarder(options: OpenOptions): Promise<Larder>;
