/**
 * What operators read matches what runs: docs/admin-api.md documents every admin API operation
 * and every problem code the API answers, and nothing in the README, docs/, the chart's README,
 * values and NOTES.txt promises a dashboard while the server serves none (Caddy's and Kong's
 * admin APIs are real, and named as theirs).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { PROBLEMS } from '../../src/api/problems.js';
import { API_PREFIX } from '../../src/api/route.js';
import { apiRoutes } from '../../src/api/routes.js';
import { openapiPath } from '../../src/api/openapi.js';
import { packageRoot } from '../../src/paths.js';

const files = [
  'README.md',
  ...readdirSync(join(packageRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  'helm/rekey/README.md',
  'helm/rekey/values.yaml',
  'helm/rekey/templates/NOTES.txt',
];

/** Every route path the server code registers (app.get/post/... with a literal path). */
function registeredRoutes(dir = join(packageRoot, 'src')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'generated' ? [] : registeredRoutes(path);
    if (!entry.name.endsWith('.ts')) return [];
    return [...readFileSync(path, 'utf8').matchAll(/\bapp\.(?:get|post|put|patch|delete|route)(?:<[^>]*>)?\(\s*['"`]([^'"`]+)/g)].map((m) => m[1]!);
  });
}

it('docs/admin-api.md documents every operation of the admin API and every problem code', () => {
  const doc = readFileSync(join(packageRoot, 'docs/admin-api.md'), 'utf8');
  const undocumented = apiRoutes.map((r) => `${r.method} ${API_PREFIX}${openapiPath(r.path)}`).filter((op) => !doc.includes(`\`${op}\``));
  expect(undocumented).toEqual([]);
  expect(Object.keys(PROBLEMS).filter((code) => !doc.includes(`\`${code}\``))).toEqual([]);
});

it('the docs and the chart promise no dashboard while the server serves none', () => {
  const routes = registeredRoutes();
  expect(routes).toContain('/readyz'); // the scan sees the routes that exist
  if (routes.some((r) => r.startsWith('/ui'))) return; // it exists now: document it freely
  const claims = files.flatMap((file) =>
    readFileSync(join(packageRoot, file), 'utf8')
      .split('\n')
      .map((line, i) => ({ where: `${file}:${i + 1}`, line }))
      .filter(({ line }) => /dashboard|\/ui\b/i.test(line) && !/caddy|kong/i.test(line)),
  );
  expect(claims).toEqual([]);
});
