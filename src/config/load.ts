/**
 * Loading rekey.yaml: parse, validate against the registry's schemas, freeze. Every
 * problem is reported with the file and the path inside it; nothing is applied from
 * a document with any problem.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAlias, isScalar, LineCounter, parseDocument, visit } from 'yaml';
import { ConfigError, type ConfigIssue } from '../core/errors.js';
import type { AnyProviderModule, ProviderCatalog } from '../core/provider.js';
import { signingKeyIssues, valueTtlIssues } from './delivery.js';
import { bindingProblemIssues, perKeyRetireIssues, publishJwksIssues, type RekeyConfig, sharedResourceIssues, validate } from './schema.js';
import { readQuickly } from './yaml-fast.js';

export interface LoadedConfig {
  config: RekeyConfig;
  /** The document as written (plain JSON; references unresolved): what `apply` stores. */
  document: Record<string, unknown>;
  /** SHA-256 of the canonical document. */
  hash: string;
}

export async function loadConfigFile(file: string, providers: ProviderCatalog): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  return parseConfig(text, file, providers);
}

export async function parseConfig(text: string, file: string, providers: ProviderCatalog): Promise<LoadedConfig> {
  const quick = readQuickly(text);
  const document = quick === undefined ? readFully(text, file) : quick;
  if (document !== null && (typeof document !== 'object' || Array.isArray(document))) {
    throw new ConfigError(file, [{ path: '', message: 'the document must be a mapping with providers: and secrets:' }]);
  }
  const { loaded, modules } = await validated((document ?? {}) as Record<string, unknown>, file, providers);
  // Apply-time checks only, not part of validate(): a stored revision applied before them must still load.
  const { config } = loaded;
  const byType = new Map(modules.map((m) => [m.type, m]));
  const signsJwt = (type: string) => !!byType.get(type)?.signsJwt;
  const issues = [
    ...signingKeyIssues(config.delivery, config.secrets, config.providers, signsJwt),
    ...valueTtlIssues(config.delivery, config.secrets),
    ...publishJwksIssues(config, signsJwt),
    ...perKeyRetireIssues(config, loaded.document, (type) => byType.get(type)?.usagePerKey !== false),
    ...sharedResourceIssues(config, (type, role, params, spec) => {
      const module = byType.get(type);
      return (role === 'store' ? module?.storeOwns?.(params, spec.client, spec.name) : role === 'issuer' ? module?.issuerOwns?.(params) : module?.targetOwns?.(params, spec.name)) ?? [];
    }),
    ...bindingProblemIssues(config, (type, role, params, spec, instanceConfig) => {
      const module = byType.get(type);
      if (role === 'store') return module?.storeProblem?.(params, spec.client);
      return role === 'issuer' ? module?.issuerProblem?.(params, instanceConfig) : module?.targetProblem?.(params, spec.name, instanceConfig);
    }),
  ];
  if (issues.length) throw new ConfigError(file, issues.map(toIssue));
  return loaded;
}

/** With the `yaml` library's document model: what readQuickly leaves to it, errors with their lines. */
function readFully(text: string, file: string): unknown {
  const lineCounter = new LineCounter();
  // yaml's own duplicate-key check compares each key with every earlier one (quadratic: minutes at 100,000 secrets).
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter });
  const errors = [
    // An unknown tag (`!loc local`) is only a warning to yaml, which reads the value as if untagged: refused here.
    ...[...doc.errors, ...doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED')].map((e) => ({ line: e.linePos?.[0], message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '') })),
    ...duplicateKeys(doc).map((offset) => ({ line: lineCounter.linePos(offset), message: 'Map keys must be unique' })),
  ];
  errors.push(...unresolvedAliases(doc).map((offset) => ({ line: lineCounter.linePos(offset.at), message: `alias *${offset.source} names no anchor set before it` })));
  if (errors.length) throw new ConfigError(file, errors.map((e) => ({ path: e.line ? `line ${e.line.line}, column ${e.line.col}` : '', message: e.message })));
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // yaml throws (not reports) what it finds while expanding aliases: the one left is their count.
    if (error instanceof ReferenceError) throw new ConfigError(file, [{ path: '', message: `aliases expand to more than ${MAX_ALIAS_COUNT} nodes` }]);
    throw error;
  }
}

const MAX_ALIAS_COUNT = 100;

/** Aliases naming no anchor set before them (in document order, as yaml resolves them): where each starts, and its name. */
function unresolvedAliases(doc: ReturnType<typeof parseDocument>): Array<{ at: number; source: string }> {
  const anchors = new Set<string>();
  const found: Array<{ at: number; source: string }> = [];
  visit(doc, {
    Node(_, node) {
      if (isAlias(node)) {
        if (!anchors.has(node.source)) found.push({ at: node.range?.[0] ?? 0, source: node.source });
      } else if (node.anchor) anchors.add(node.anchor);
    },
  });
  return found;
}

/** Where each repeated key of a mapping starts (scalar keys compared as the object keys they become), in one pass. */
function duplicateKeys(doc: ReturnType<typeof parseDocument>): number[] {
  const offsets: number[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const { key } of map.items) {
        if (!isScalar(key)) continue;
        // As the key of the object toJS builds (yaml's stringifyKey): `1` and "1", `true` and "true" are one key there.
        const { value } = key;
        const name = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : value == null ? '' : undefined;
        if (name === undefined) continue;
        if (seen.has(name)) offsets.push(key.range?.[0] ?? 0);
        seen.add(name);
      }
    },
  });
  return offsets;
}

/** Validates an already-parsed document (a stored revision, for instance), importing the providers it names. */
export async function fromDocument(document: Record<string, unknown>, source: string, providers: ProviderCatalog): Promise<LoadedConfig> {
  return (await validated(document, source, providers)).loaded;
}

/** fromDocument, plus the provider modules it imported (every type the document names), for parseConfig's checks. */
async function validated(document: Record<string, unknown>, source: string, providers: ProviderCatalog): Promise<{ loaded: LoadedConfig; modules: AnyProviderModule[] }> {
  const modules = await providers.load(typesNamed(document));
  const result = validate(document, modules, providers.types);
  if ('issues' in result) throw new ConfigError(source, result.issues.map(toIssue));
  return { loaded: { config: deepFreeze(result.config), document, hash: hashDocument(document) }, modules };
}

/** Every string under a `type:` key, wherever it is: the provider types a document may use. */
function typesNamed(value: unknown, found = new Set<string>()): Set<string> {
  if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'type' && typeof child === 'string') found.add(child);
      else typesNamed(child, found);
    }
  }
  return found;
}

export function hashDocument(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** JSON with sorted keys, so two spellings of one document hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const object = value as Record<string, unknown>;
    return `{${Object.keys(object)
      .filter((k) => object[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(object[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function toIssue(issue: { path: Array<string | number>; message: string }): ConfigIssue {
  return { path: issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replaceAll('.[', '['), message: issue.message };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
    else for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
