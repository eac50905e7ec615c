/** What every `rekey` command gets, and how one ends with a chosen exit code. */
import type { ProviderCatalog } from '../core/provider.js';

export interface CliContext {
  /** The providers a config may use, imported on first use. */
  modules: ProviderCatalog;
  out: (text: string) => void;
}

/** Thrown by a command to end with `code` (1: found or failed, 2: usage) after printing its own output. */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
