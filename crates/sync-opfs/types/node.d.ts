import type { Store } from './store.js';
import type { RunResult } from './larder.js';

export interface LoadedComponent {
  /** Runs the app once with `argv` (its name first), lending it `store`. */
  run(argv: string[], options: { store: Store; env?: Record<string, string> }): Promise<RunResult>;
}

/** Loads the component jco transpiled (`--instantiation async`) at `jsPath`. */
export function loadComponent(jsPath: string): Promise<LoadedComponent>;
