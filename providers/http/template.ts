/**
 * The small template language of the http issuer:
 * - `{{name}}` in URLs, header values and body strings, with name one of `secret`, `versionId`,
 *   `number`, `consumer`, `vars.<key>`, and `id` (revoke, verify) or `value` (verify only).
 *   In URLs the substituted text is percent-encoded.
 * - `${env:NAME}` in header values: a credential reference, resolved when the request is sent.
 * - JSON paths `$.data.key`, `data.items[0].id` to read the response.
 */
import type { CredentialRef } from '../../src/core/credential.js';
import { RekeyError } from '../../src/core/errors.js';
import type { JsonValue } from '../../src/core/ports.js';

export type Vars = Record<string, string | undefined>;

/** A header value: literal text and credential references, in order. */
export type HeaderTemplate = Array<string | CredentialRef>;

const VARIABLE = /\{\{\s*([A-Za-z][\w.-]*)\s*\}\}/g;
const ENV = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** The variable names a template text uses. */
export function variablesOf(text: string): string[] {
  return [...text.matchAll(VARIABLE)].map((m) => m[1]!);
}

/** Every variable used anywhere in a JSON body. */
export function variablesOfJson(value: JsonValue | undefined): string[] {
  if (typeof value === 'string') return variablesOf(value);
  if (Array.isArray(value)) return value.flatMap(variablesOfJson);
  if (value && typeof value === 'object') return Object.values(value).flatMap(variablesOfJson);
  return [];
}

/** Substitutes variables. @throws RekeyError naming an unknown variable (never a value). */
export function render(text: string, vars: Vars, encode: (s: string) => string = (s) => s): string {
  return text.replace(VARIABLE, (_, name: string) => {
    const value = Object.hasOwn(vars, name) ? vars[name] : undefined;
    if (value === undefined) throw new RekeyError('REKEY_ERR_CONFIG', `unknown template variable {{${name}}}`);
    return encode(value);
  });
}

export function renderJson(value: JsonValue, vars: Vars): JsonValue {
  if (typeof value === 'string') return render(value, vars);
  if (Array.isArray(value)) return value.map((item) => renderJson(item, vars));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, renderJson(item, vars)]));
  }
  return value;
}

/** Splits a header value into text and `${env:NAME}` references. */
export function parseHeader(text: string): HeaderTemplate {
  const parts: HeaderTemplate = [];
  let last = 0;
  for (const match of text.matchAll(ENV)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    parts.push({ kind: 'env', name: match[1]! });
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** Parses `$.a.b[0].c` / `a.b.0.c` / `$[0].id` into segments; undefined when malformed. */
export function parsePath(path: string): Array<string | number> | undefined {
  const body = path.replace(/^\$\.?/, '');
  if (!body) return [];
  const segments: Array<string | number> = [];
  for (const piece of body.split('.')) {
    if (/^\d+$/.test(piece)) {
      segments.push(Number(piece));
      continue;
    }
    const match = /^([A-Za-z_$][\w$-]*)((?:\[\d+\])*)$/.exec(piece) ?? /^()((?:\[\d+\])+)$/.exec(piece);
    if (!match) return undefined;
    if (match[1]) segments.push(match[1]);
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]));
  }
  return segments;
}

/** Reads a path out of a parsed JSON document. */
export function readPath(document: unknown, segments: Array<string | number>): unknown {
  let node = document;
  for (const segment of segments) {
    // Own members only: `$.constructor` or `$.__proto__` names nothing in a JSON document.
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string | number, unknown>)[segment];
  }
  return node;
}
