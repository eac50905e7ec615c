// Types for scripts/build-ui.mjs, so TypeScript tests can import it.
/** Builds the dashboard into dist/ui (removed first); returns that directory. */
export function buildUi(): string;
