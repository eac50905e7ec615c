/**
 * What operators read matches what runs: docs/admin-api.md documents every admin API operation
 * and every problem code the API answers; the dashboard they describe is served, with the
 * Content-Security-Policy docs/dashboard.md quotes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { PROBLEMS } from '../../src/api/problems.js';
import { API_PREFIX } from '../../src/api/route.js';
import { apiRoutes } from '../../src/api/routes.js';
import { openapiPath } from '../../src/api/openapi.js';
import { CONTENT_SECURITY_POLICY } from '../../src/dashboard/assets.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import { serverRoutes } from '../../src/http/routes.js';
import { packageRoot } from '../../src/paths.js';

it('docs/admin-api.md documents every operation of the admin API and every problem code', () => {
  const doc = readFileSync(join(packageRoot, 'docs/admin-api.md'), 'utf8');
  const undocumented = apiRoutes.map((r) => `${r.method} ${API_PREFIX}${openapiPath(r.path)}`).filter((op) => !doc.includes(`\`${op}\``));
  expect(undocumented).toEqual([]);
  expect(Object.keys(PROBLEMS).filter((code) => !doc.includes(`\`${code}\``))).toEqual([]);
});

it('the dashboard the docs describe is served by `rekey server` with the Content-Security-Policy docs/dashboard.md quotes', () => {
  expect(serverRoutes).toContain(dashboardRoutes);
  expect(readFileSync(join(packageRoot, 'README.md'), 'utf8')).toContain('(docs/dashboard.md)');
  const doc = readFileSync(join(packageRoot, 'docs/dashboard.md'), 'utf8').replace(/\s+/g, ' ');
  expect(CONTENT_SECURITY_POLICY.split('; ').filter((directive) => !doc.includes(directive))).toEqual([]);
});
