/**
 * What operators read matches what runs: docs/admin-api.md documents every admin API operation
 * and every problem code the API answers; the dashboard they describe is served, with the
 * Content-Security-Policy docs/dashboard.md quotes; README.md's CLI tables name every command
 * and every option `rekey --help` lists, and its table of error codes every REKEY_ERR_* code with
 * whether it is retried. Where the docs state what a test asserts (a rollback's order of provider
 * calls, a store's API calls per rotation), they state what that test asserts.
 */
import { readdirSync, readFileSync } from 'node:fs';
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

const read = (path: string) => readFileSync(join(packageRoot, path), 'utf8');
const docs = () => [
  'README.md',
  ...readdirSync(join(packageRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ...readdirSync(join(packageRoot, 'providers'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `providers/${d.name}/README.md`),
];

it('every order of a rollback the docs state is the one protocol.test.ts asserts', () => {
  // The row of a rollback after a failed deploy names all three: store.destroy, retire:edge, revoke.
  const row = /\['deploy:edge', \[([^\]]*)\]\]/.exec(read('test/integration/protocol.test.ts'))?.[1] ?? '';
  const words = { 'store.destroy': 'destroy', 'retire:edge': 'retire', revoke: 'revoke' } as Record<string, string>;
  const asserted = [...row.matchAll(/'([^']+)'/g)].map((m) => words[m[1]!]).filter((w) => w !== undefined);
  expect(asserted.sort()).toEqual(['destroy', 'retire', 'revoke']);
  const order = (text: string): string[] =>
    (['destroy', 'retire', 'revoke'] as const)
      .map((w) => [w, text.search(w === 'destroy' ? /destroy/i : w === 'retire' ? /retir/i : /revok/i)] as const)
      .filter(([, at]) => at >= 0)
      .sort((a, b) => a[1] - b[1])
      .map(([w]) => w);
  // What a rollback does, as the docs say it: the parenthesis after "rolls back" / "rolled back" or
  // about "the rolled-back version", and the doc comment of rotation.ts's undo().
  const statements: Array<[string, string]> = [];
  for (const path of docs()) {
    let text: string;
    try {
      text = read(path).replace(/\s+/g, ' ');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/roll(?:s|ed)? back \(([^()]*)\)|\(the rolled-back version is ([^()]*)\)/g)) statements.push([path, m[1] ?? m[2]!]);
  }
  const undo = /Takes the run's version back: ([^.]*)\./.exec(read('src/core/rotation.ts').replace(/\s*\*\s*/g, ' '))?.[1];
  statements.push(['src/core/rotation.ts', undo ?? '']);
  const stated = statements.map(([path, text]) => ({ path, text, order: order(text) })).filter((s) => s.order.length >= 2);
  expect(stated.length).toBeGreaterThanOrEqual(4);
  expect(stated.filter((s) => s.order.join() !== asserted.filter((w) => s.order.includes(w)).join())).toEqual([]);
});

it('the API calls per rotation the docs give each cloud store are the ones cloud-stores.test.ts counts', () => {
  const [, aws, gcp] = (/toBe\(store === 'aws' \? (\d+) : (\d+)\)/.exec(read('test/integration/cloud-stores.test.ts')) ?? []).map(Number);
  expect(aws).toBeGreaterThan(0);
  // "3 `DescribeSecret`" counts 3, a bare "`GetSecretValue`" 1; what a parenthesis adds (another mode) is left out.
  const sum = (calls: string) =>
    calls
      .replace(/\([^)]*\)/g, '')
      .split(/,| \+ /)
      .filter((c) => c.includes('`'))
      .reduce((total, c) => total + Number(/^\s*(\d+) `/.exec(c)?.[1] ?? 1), 0);
  const figures = read('docs/cloud-stores.md');
  for (const [store, expected] of [['AWS Secrets Manager', aws], ['Google Secret Manager', gcp]] as const) {
    const [, count, calls] = new RegExp(`^\\| ${store} \\| (\\d+): ([^|]*)\\|`, 'm').exec(figures) ?? [];
    expect({ store, count: Number(count), listed: sum(calls ?? '') }).toEqual({ store, count: expected, listed: expected });
  }
  const provider = read('providers/aws-secrets-manager/README.md');
  const table = provider.slice(provider.indexOf('\n## Calls per rotation\n'), provider.indexOf('\n## ', provider.indexOf('\n## Calls per rotation\n') + 1));
  const steps = [...table.matchAll(/^\| (?!step |---|\*\*total)[^|]+\| ([^|]+) \|$/gm)].reduce((total, m) => total + sum(m[1]!), 0);
  expect({ total: Number(/\*\*total\*\* \| \*\*(\d+)\*\*/.exec(table)?.[1]), steps }).toEqual({ total: aws, steps: aws });
  expect(read('providers/gcp-secret-manager/README.md')).toContain(`the same calls per rotation (${gcp})`);
  // README quotes the figure measured on an older commit, with the count since then.
  const quoted = /AWS Secrets Manager (\d+) calls per rotation(?: \((\d+) since [^)]*\))?/.exec(read('README.md'));
  expect(Number(quoted?.[2] ?? quoted?.[1])).toBe(aws);
});
