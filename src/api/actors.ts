/**
 * How the audit log names who acted (an event's `actor`), and what an actor filter
 * (`GET /api/v1/audit?actor=`, `rekey audit log --actor`, the dashboard's Audit view) finds:
 *
 * - `cli:<OS user>`: a `rekey` command (src/cli/with-runtime.ts); plain `cli` before 2026-12-06.
 * - `token:<name>`: an admin API token; `oidc:<issuer>#<subject>`: a person signed in with
 *   OpenID Connect (`oidc:<subject>` before 2026-12-06: two providers may have a subject each).
 * - `subject:<id>` (delivery), `leak/<source>/<delivery id>` (a receiver; `rekey revoke --token-stdin` is `cli:<OS user>`), `worker`, `server`, `dev`, `demo`.
 *
 * A filter is the actor itself, and finds more in two cases, so a filter written for the names from
 * before still finds what it found then and what the same people do now: a kind alone (`cli`,
 * `oidc`, `token`) finds every actor of that kind; `oidc:<subject>` finds that subject at every
 * provider too.
 */
import type { Prisma } from '../db/generated/client.js';

/** `%` and `#` escaped (as in a URL), so the first `#` of a person's actor ends the issuer. */
const escaped = (part: string) => part.replaceAll('%', '%25').replaceAll('#', '%23');

/** The actor of a person an OpenID Connect provider signed in. */
export function personActor(person: { issuer: string; subject: string }): string {
  return `oidc:${escaped(person.issuer)}#${escaped(person.subject)}`;
}

/** A LIKE pattern's wildcards taken literally: Prisma's startsWith and endsWith pass them on as they are. */
const literal = (text: string) => text.replace(/[\\%_]/g, '\\$&');

/** The audit events an actor filter finds (see above). */
export function actorWhere(filter: string): Prisma.AuditEventWhereInput {
  if (/^[a-z]+$/.test(filter)) return { OR: [{ actor: filter }, { actor: { startsWith: `${filter}:` } }] };
  if (filter.startsWith('oidc:')) return { OR: [{ actor: filter }, { actor: { startsWith: 'oidc:', endsWith: literal(`#${escaped(filter.slice('oidc:'.length))}`) } }] };
  return { actor: filter };
}
