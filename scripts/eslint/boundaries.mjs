// The layout DESIGN.md promises, as an ESLint rule (`rekey/boundaries`):
// - src/core imports only src/core and no infrastructure package (BullMQ, ioredis, fastify,
//   Prisma, pg); the protocol files do not import the providers' toolkit (src/core/kit);
// - a provider imports only src/core and its own folder (its tests may also use test/);
// - nothing else under src/ imports a provider, except src/registry.ts (the one list) and
//   the demo (src/cli/demo.ts), which plays an API server with the redis-keyset middleware;
// - the client library (src/client, exported as `rekey/client`, linked into apps) imports only
//   its own folder and Node's built-in modules: no database, queue, provider SDK or server code.
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INFRASTRUCTURE = /^(bullmq|ioredis|fastify|@fastify\/.*|@prisma\/.*|prisma|pg|pg-.*)$/;
const MAY_IMPORT_PROVIDERS = new Set(['src/registry.ts', 'src/cli/demo.ts']);

/** Where a file sits: core, kit, client, provider:<name>, provider-test:<name>, src, or other. */
export function layerOf(path) {
  const [top, second, third] = path.split('/');
  if (top === 'src' && second === 'core') return third === 'kit' ? 'kit' : 'core';
  if (top === 'src' && second === 'client') return 'client';
  if (top === 'providers' && third !== undefined) return third === 'test' ? `provider-test:${second}` : `provider:${second}`;
  if (top === 'src') return 'src';
  return 'other';
}

/** Why `from` may not import `spec` (which resolves to `to`, or undefined for a package), or undefined. */
export function violation(from, spec, to) {
  const layer = layerOf(from);
  if (to === undefined) {
    const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
    if ((layer === 'core' || layer === 'kit') && INFRASTRUCTURE.test(name)) return `src/core must not import ${name}: it drives ports, not infrastructure`;
    if (layer === 'client' && !spec.startsWith('node:')) return `the client library (rekey/client) imports only node: built-ins, not ${name}`;
    return undefined;
  }
  const target = layerOf(to);
  if (layer === 'client' && target !== 'client') return `the client library (rekey/client) imports only src/client, not ${to}`;
  const inProviders = to.startsWith('providers/');
  if (layer === 'core') {
    if (target === 'kit') return 'the protocol in src/core must not import src/core/kit (the providers\' toolkit)';
    if (target !== 'core') return `src/core must import only src/core, not ${to}`;
  }
  if (layer === 'kit' && target !== 'core' && target !== 'kit') return `src/core/kit must import only src/core, not ${to}`;
  if (layer.startsWith('provider:')) {
    const own = layer.slice('provider:'.length);
    const ownFolder = to.startsWith(`providers/${own}/`);
    if (!ownFolder && target !== 'core' && target !== 'kit') return `a provider imports only src/core and its own folder, not ${to}`;
  }
  if (layer.startsWith('provider-test:')) {
    const own = layer.slice('provider-test:'.length);
    if (inProviders && !to.startsWith(`providers/${own}/`)) return `a provider's tests must not import another provider (${to})`;
  }
  if (layer === 'src' && inProviders && !MAY_IMPORT_PROVIDERS.has(from)) return `only src/registry.ts imports providers, not ${from}`;
  return undefined;
}

const rule = {
  meta: { type: 'problem', docs: { description: 'Import boundaries of DESIGN.md' }, schema: [] },
  create(context) {
    const file = relative(ROOT, context.filename).split(sep).join('/');
    const check = (node) => {
      const spec = node.source?.value;
      if (typeof spec !== 'string') return;
      const to = spec.startsWith('.') ? relative(ROOT, resolve(dirname(context.filename), spec)).split(sep).join('/').replace(/\.js$/, '.ts') : undefined;
      const problem = violation(file, spec, to);
      if (problem) context.report({ node: node.source, message: problem });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: check };
  },
};

export default { rules: { boundaries: rule } };
