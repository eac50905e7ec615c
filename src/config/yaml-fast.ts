/**
 * The quick way to read rekey.yaml: js-yaml builds plain objects directly, where the `yaml`
 * library (which load.ts keeps for everything else) builds a full document model first. For a
 * 100,000-secret file (12 MB) that is about 4 s and 170 MB instead of tens of seconds and 1.4 GB.
 *
 * It answers only for documents it reads exactly as `yaml` does (YAML 1.2 core schema), and
 * returns undefined for anything else, which load.ts then reads with `yaml` (and reports its
 * errors, with their lines): any error at all (duplicate keys, an unknown tag, bad syntax), a
 * `%` directive (which can switch `yaml` to YAML 1.1), any `&` (anchors, and so aliases, whose
 * expansion `yaml` bounds), and keys that the two spell differently (a null key, a collection
 * as a key). Its scalars resolve with `yaml`'s own core-schema patterns, not js-yaml's (which
 * also read `0b101` as 5 and `+.5` as a string).
 */
import { FAILSAFE_SCHEMA, load, Type } from 'js-yaml';

const scalar = (tag: string, patterns: Array<[RegExp, (text: string) => unknown]>) =>
  new Type(`tag:yaml.org,2002:${tag}`, {
    kind: 'scalar',
    resolve: (text: string) => patterns.some(([pattern]) => pattern.test(text)),
    construct: (text: string) => patterns.find(([pattern]) => pattern.test(text))![1](text),
  });

/** `yaml`'s core schema (yaml/dist/schema/core, common/null.js): its patterns, in its order. */
const CORE = FAILSAFE_SCHEMA.extend({
  implicit: [
    scalar('null', [[/^(?:~|[Nn]ull|NULL)?$/, () => null]]),
    scalar('bool', [[/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (t) => t[0] === 't' || t[0] === 'T']]),
    scalar('int', [
      [/^0o[0-7]+$/, (t) => parseInt(t.slice(2), 8)],
      [/^[-+]?[0-9]+$/, (t) => parseInt(t, 10)],
      [/^0x[0-9a-fA-F]+$/, (t) => parseInt(t.slice(2), 16)],
    ]),
    scalar('float', [
      [/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, (t) => (t.slice(-3).toLowerCase() === 'nan' ? NaN : t.startsWith('-') ? -Infinity : Infinity)],
      [/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, parseFloat],
      [/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, parseFloat],
    ]),
  ],
});

/** The document as plain JSON values, or undefined: read it with `yaml` instead. */
export function readQuickly(text: string): unknown {
  if (text.includes('&') || /^%/m.test(text)) return undefined;
  let document: unknown;
  try {
    document = load(text, { schema: CORE });
  } catch {
    return undefined;
  }
  return plainKeys(document) ? (document ?? null) : undefined;
}

/** False when a key may be spelled differently by `yaml`: `null` (from `~:`, `null:`; `yaml` says ""), or a collection turned into text. */
function plainKeys(value: unknown): boolean {
  if (Array.isArray(value)) return value.every(plainKeys);
  if (value === null || typeof value !== 'object') return true;
  for (const key in value) {
    if (key === 'null' || key.includes(',') || key.startsWith('[object ')) return false;
    if (!plainKeys((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}
