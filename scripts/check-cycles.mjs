#!/usr/bin/env node
// Import cycles among the modules that ship (src/, providers/ without their tests), found by
// the machine as BullMQ's `madge --circular` does. Type-only imports are erased at run time
// and dynamic import() is lazy, so neither counts. Exits 1 and prints each cycle when any.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const STATIC_IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;

/** Module graph: file -> files it imports at load time. */
export function importGraph(root, folders = ['src', 'providers']) {
  const graph = new Map();
  const walk = (dir) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) {
        if (entry !== 'test' && entry !== 'generated' && entry !== 'node_modules') walk(path);
      } else if (path.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8');
        const edges = [...text.matchAll(STATIC_IMPORT)]
          .filter((m) => !/^\s*(import|export)\s*\{[^}]*\}/.test(m[0]) || !/^\s*(import|export)\s*\{\s*(type\s+[^,}]+\s*,?\s*)+\}/.test(m[0]))
          .map((m) => relative(root, resolve(dirname(path), m[1].replace(/\.js$/, '.ts'))));
        graph.set(relative(root, path), edges);
      }
    }
  };
  for (const folder of folders) walk(join(root, folder));
  return graph;
}

/** Strongly connected components with more than one module (or a module importing itself). */
export function cycles(graph) {
  let index = 0;
  const stack = [];
  const meta = new Map();
  const found = [];
  const visit = (v) => {
    meta.set(v, { index, low: index, onStack: true });
    index += 1;
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!meta.has(w)) {
        visit(w);
        meta.get(v).low = Math.min(meta.get(v).low, meta.get(w).low);
      } else if (meta.get(w).onStack) meta.get(v).low = Math.min(meta.get(v).low, meta.get(w).index);
    }
    if (meta.get(v).low === meta.get(v).index) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        meta.get(w).onStack = false;
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!meta.has(v)) visit(v);
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const found = cycles(importGraph(root));
  for (const component of found) console.error(`import cycle: ${component.join(' <-> ')}`);
  if (found.length) process.exit(1);
  console.log('no import cycles');
}
