// Types for scripts/check-cycles.mjs, so TypeScript tests can import it.
/** Module graph of src/ and providers/ (tests excluded): file -> files it imports at load time. */
export function importGraph(root: string, folders?: string[]): Map<string, string[]>;
/** Each import cycle of the graph, as its sorted modules. */
export function cycles(graph: Map<string, string[]>): string[][];
