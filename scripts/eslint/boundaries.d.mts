// Types for scripts/eslint/boundaries.mjs, so TypeScript tests can import it.
import type { ESLint } from 'eslint';
/** Where a repository path sits: core, kit, provider:<name>, provider-test:<name>, src or other. */
export function layerOf(path: string): string;
/** Why `from` may not import `spec` (resolved to `to`, undefined for a package), or undefined. */
export function violation(from: string, spec: string, to: string | undefined): string | undefined;
declare const plugin: ESLint.Plugin;
export default plugin;
