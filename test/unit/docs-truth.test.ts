/**
 * What operators read matches what runs: docs/admin-api.md documents every admin API operation
 * and every problem code the API answers; the dashboard they describe is served, with the
 * Content-Security-Policy docs/dashboard.md quotes; README.md's CLI tables name every command
 * and every option `rekey --help` lists, and its table of error codes every REKEY_ERR_* code with
 * whether it is retried.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { PROBLEMS } from '../../src/api/problems.js';
import { API_PREFIX } from '../../src/api/route.js';
import { apiRoutes } from '../../src/api/routes.js';
import { openapiPath } from '../../src/api/openapi.js';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { ERROR_CODES } from '../../src/core/errors.js';
import { CONTENT_SECURITY_POLICY } from '../../src/dashboard/assets.js';
import { dashboardRoutes } from '../../src/dashboard/routes.js';
import { serverRoutes } from '../../src/http/routes.js';
import { packageRoot } from '../../src/paths.js';
import { providers } from '../../src/registry.js';

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

it("README.md's CLI tables have a row for every command, naming each of its options", () => {
  const readme = readFileSync(join(packageRoot, 'README.md'), 'utf8');
  const rows = readme.slice(readme.indexOf('\n## CLI\n'), readme.indexOf('\n## Deploy to Kubernetes\n')).split('\n').filter((l) => l.startsWith('| `'));
  const missing: string[] = [];
  const walk = (command: Command, prefix: string) => {
    for (const sub of command.commands) {
      const name = `${prefix}${sub.name()}`;
      if (sub.commands.length) {
        walk(sub, `${name} `);
        continue;
      }
      // A row's first cell, where `a ... / b ...` documents two commands in one row.
      const usage = rows.map((r) => r.split(' | ')[0]!).filter((cell) => new RegExp(`(^\\| |/ )\`${name}( |\`)`).test(cell));
      if (!usage.length) missing.push(name);
      for (const option of sub.options) {
        if (option.long === '--help' || usage.some((cell) => cell.includes(option.long!) || (!!option.short && cell.includes(`${option.short} `)))) continue;
        missing.push(`${name} ${option.long}`);
      }
    }
  };
  walk(buildProgram({ modules: providers, out: () => undefined }), '');
  expect(missing).toEqual([]);
});

it("README.md's table of error codes has every REKEY_ERR_* code, each retried or not as the code says", () => {
  const readme = readFileSync(join(packageRoot, 'README.md'), 'utf8');
  const documented = Object.fromEntries([...readme.matchAll(/^\| `(REKEY_ERR_[A-Z_]+)` \| (yes|no) \|/gm)].map((m) => [m[1]!, m[2] === 'yes']));
  expect(documented).toEqual(ERROR_CODES);
});
