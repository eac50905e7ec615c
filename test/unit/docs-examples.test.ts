/**
 * The rekey.yaml examples in README.md, docs/ and each provider's README load as `rekey apply`
 * (and `--dry-run`) loads a file. Many are fragments that show one provider or one section: a
 * secret without `store:` or `issuer:` gets a built-in one, and a provider or secret an example
 * names without defining comes from another example (the same file's first, then any file's).
 * Nothing else is filled in: `${env:NAME}` references must be listed in the example's `env.allow`.
 * The chart's example values (helm/rekey/ci/*.yaml) carry whole files in `config`: those load as
 * the install hook's `rekey apply` loads them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { documentSchema } from '../../src/config/schema.js';
import { packageRoot } from '../../src/paths.js';
import { providers } from '../../src/registry.js';

type Doc = Record<string, unknown> & { providers?: Record<string, unknown>; secrets?: Record<string, Record<string, unknown>> };
interface Example {
  file: string;
  line: number;
  doc: Doc;
}

const SECTIONS = new Set(Object.keys(documentSchema.shape));
const files = [
  'README.md',
  ...readdirSync(join(packageRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ...readdirSync(join(packageRoot, 'providers'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `providers/${d.name}/README.md`),
];

/** Every ```yaml block whose top-level keys are all rekey.yaml sections (not Helm values, Kubernetes objects, ...). */
function examples(file: string): Example[] {
  let text: string;
  try {
    text = readFileSync(join(packageRoot, file), 'utf8');
  } catch {
    return [];
  }
  const found: Example[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```ya?ml\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(Math.min(indent, lines[j]!.length - lines[j]!.trimStart().length)));
    // A block of several documents is Kubernetes objects, never a rekey.yaml.
    const documents = parseAllDocuments(body.join('\n'));
    const doc = Array.isArray(documents) && documents.length === 1 ? (documents[0]!.toJS() as unknown) : undefined;
    if (doc && typeof doc === 'object' && !Array.isArray(doc) && Object.keys(doc).every((k) => SECTIONS.has(k))) found.push({ file, line: i + 1, doc: doc as Doc });
    i = j;
  }
  return found;
}

const all = files.flatMap(examples);

/** Definitions of providers and complete secrets, for the examples that name them without defining them. */
function definitions(list: Example[]): { providers: Map<string, unknown>; secrets: Map<string, Record<string, unknown>> } {
  const providers = new Map<string, unknown>();
  const secrets = new Map<string, Record<string, unknown>>();
  for (const { doc } of list) {
    for (const [name, entry] of Object.entries(doc.providers ?? {})) if (!providers.has(name)) providers.set(name, entry);
    for (const [name, s] of Object.entries(doc.secrets ?? {})) if (s?.store && s.issuer && !secrets.has(name)) secrets.set(name, s);
  }
  return { providers, secrets };
}

const everywhere = definitions(all);

/** The example as a whole file: the fragment's missing parts filled in as the module comment says. */
function completed(example: Example): string {
  const local = definitions(all.filter((e) => e.file === example.file));
  const doc = structuredClone(example.doc);
  const providerEntries = (doc.providers ??= {});
  const secretEntries = (doc.secrets ??= {});
  const provider = (name: unknown) => {
    if (typeof name !== 'string' || Object.hasOwn(providerEntries, name)) return;
    const entry = local.providers.get(name) ?? everywhere.providers.get(name);
    if (entry) providerEntries[name] = structuredClone(entry);
  };
  const bindings = (s: Record<string, unknown>) => {
    provider((s.store as { provider?: unknown }).provider);
    provider((s.issuer as { provider?: unknown }).provider);
    for (const t of (s.targets as unknown[] | undefined) ?? []) provider(typeof t === 'string' ? t : (t as { provider?: unknown }).provider);
  };
  for (const s of Object.values(secretEntries)) {
    if (!s || typeof s !== 'object') continue;
    if (!s.store) {
      providerEntries['docs-example-store'] ??= { type: 'local' };
      s.store = { provider: 'docs-example-store' };
    }
    s.issuer ??= { type: 'random' };
    bindings(s);
  }
  const delivery = doc.delivery as { grants?: Record<string, { token?: { signingKey?: string }; value?: { secret?: string } }>; authenticators?: Record<string, { provider?: unknown }> } | undefined;
  for (const grant of Object.values(delivery?.grants ?? {})) {
    for (const name of [grant?.token?.signingKey, grant?.value?.secret]) {
      if (typeof name !== 'string' || Object.hasOwn(secretEntries, name)) continue;
      const s = local.secrets.get(name) ?? everywhere.secrets.get(name);
      if (!s) continue;
      secretEntries[name] = structuredClone(s);
      bindings(secretEntries[name]);
    }
  }
  for (const a of Object.values(delivery?.authenticators ?? {})) provider(a?.provider);
  return stringify(doc);
}

it('finds the examples', () => {
  expect(all.length).toBeGreaterThan(30);
  expect(all.filter((e) => e.file === 'README.md')).toHaveLength(1);
});

it('every rekey.yaml example in README.md, docs/ and providers/*/README.md loads as `rekey apply` loads it', async () => {
  const failures: string[] = [];
  for (const example of all) {
    try {
      await parseConfig(completed(example), `${example.file}:${example.line}`, providers);
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  expect(failures).toEqual([]);
}, 60_000);

it("the `config` of each example values file of the chart (helm/rekey/ci) loads as the install hook's `rekey apply` loads it", async () => {
  const dir = join(packageRoot, 'helm/rekey/ci');
  const failures: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    const { config } = (parse(readFileSync(join(dir, file), 'utf8')) ?? {}) as { config?: unknown };
    if (config === undefined || config === null) continue;
    try {
      await parseConfig(typeof config === 'string' ? config : stringify(config), `helm/rekey/ci/${file}: config`, providers);
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  expect(failures).toEqual([]);
}, 60_000);
