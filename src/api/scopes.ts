/**
 * What an admin API token may do. A scope is `read`, `rotate`, `revoke` or `admin`, optionally
 * limited to secrets whose names match a glob (`rotate:payments-*`; `*` matches any run of
 * characters, `/` included, so `acme/*` covers a per-client family). `admin` includes the
 * other three. An operation on one secret needs a scope matching its name; an operation on no
 * secret (the audit log as a whole, config revisions, leak reports of unknown keys) needs the
 * scope without a glob.
 */

/** The syntax of a scope: `rotate:payments-*`. Kept here, free of zod: `rekey keygen` and `--help` load this module. */
export const SCOPE_PATTERN = /^(read|rotate|revoke|admin)(?::([A-Za-z0-9_.*/-]{1,200}))?$/;

export const SCOPE_NAMES = ['read', 'rotate', 'revoke', 'admin'] as const;
export type ScopeName = (typeof SCOPE_NAMES)[number];

export interface Scope {
  name: ScopeName;
  /** Secret name glob; undefined: every secret and what belongs to none. */
  glob?: string;
}


/** Parses `rotate:payments-*`; undefined when it is not a scope. */
export function parseScope(text: string): Scope | undefined {
  const match = SCOPE_PATTERN.exec(text);
  if (!match) return undefined;
  return match[2] === undefined ? { name: match[1] as ScopeName } : { name: match[1] as ScopeName, glob: match[2] };
}

/**
 * The glob as an anchored RegExp that runs in time linear in the name for each `*`. A plain
 * `a.*b.*c` backtracks through every split of the name among the stars, so `?name=` with twenty
 * `*` would hold the event loop for seconds per secret; here each part between stars is taken at
 * its first occurrence, in an atomic lookahead (`(?=(.*?part))\1`), which never backtracks and
 * matches exactly the names the plain form does (the earliest place of a part leaves the most
 * room for the rest).
 */
export function globRegExp(glob: string): RegExp {
  const parts = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&'));
  if (parts.length === 1) return new RegExp(`^${parts[0]}$`);
  const middle = parts.slice(1, -1).filter(Boolean);
  return new RegExp(`^${parts[0]}${middle.map((part, i) => `(?=(.*?${part}))\\${i + 1}`).join('')}.*${parts.at(-1)}$`);
}

/** A token's scopes, asked what they allow. */
export class Access {
  private readonly grants: Array<{ name: ScopeName; match?: RegExp }>;

  constructor(scopes: readonly string[]) {
    this.grants = scopes.flatMap((text) => {
      const scope = parseScope(text);
      return scope ? [{ name: scope.name, ...(scope.glob ? { match: globRegExp(scope.glob) } : {}) }] : [];
    });
  }

  private grantsFor(name: ScopeName) {
    return this.grants.filter((g) => g.name === name || g.name === 'admin');
  }

  /** May act with `name` on `secret` (or, without one, on everything). */
  allows(name: ScopeName, secret?: string | null): boolean {
    return this.grantsFor(name).some((g) => !g.match || (secret != null && g.match.test(secret)));
  }

  /** Holds `name` for at least one secret: the operation shows up in the caller's OpenAPI document. */
  holds(name: ScopeName): boolean {
    return this.grantsFor(name).length > 0;
  }
}
