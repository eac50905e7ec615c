/**
 * Role bookkeeping for postgres-role. Each login role rekey manages carries a marker in its
 * comment (`COMMENT ON ROLE`), written in the same transaction as its password:
 *
 *   rekey:live:<versionId>:<issued at, ms>      the role's password belongs to that version
 *   rekey:revoked:<versionId>:<revoked at, ms>  that version was revoked; the password is unknown
 *
 * The marker is what lets revoke work without the value: it replaces a role's password only
 * if the role still holds the version being revoked, never a newer one.
 */
import pg from 'pg';

export interface Marker {
  status: 'live' | 'revoked';
  versionId: string;
  at: number;
}

export interface RoleInfo {
  name: string;
  exists: boolean;
  marker: Marker | undefined;
}

const MARKER = /^rekey:(live|revoked):([0-9a-f-]{36}):(\d{1,15})$/;

export function formatMarker(marker: Marker): string {
  return `rekey:${marker.status}:${marker.versionId}:${marker.at}`;
}

export function parseMarker(comment: string | null | undefined): Marker | undefined {
  const match = comment ? MARKER.exec(comment) : null;
  return match ? { status: match[1] as Marker['status'], versionId: match[2]!, at: Number(match[3]) } : undefined;
}

/** Reads roles and their markers; a role that does not exist comes back with exists: false. */
export async function readRoles(client: pg.ClientBase, names: string[]): Promise<RoleInfo[]> {
  const { rows } = await client.query<{ rolname: string; comment: string | null }>(
    `SELECT rolname, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = ANY($1::text[])`,
    [names],
  );
  return names.map((name) => {
    const row = rows.find((r) => r.rolname === name);
    return { name, exists: Boolean(row), marker: parseMarker(row?.comment) };
  });
}

/**
 * Which of the two alternating roles receives `versionId`'s password:
 * 1. the one already holding it (issue retried after a crash: replace its password);
 * 2. else one not holding a live version: missing, then revoked (oldest first), then unmarked
 *    (`_b` before `_a`, so adopting hand-made roles leaves `_a`, the usual live one, alone);
 * 3. else both are live (a rotation before the previous version's grace ended): the older one,
 *    which holds the previous version (the current one is always the newer).
 */
export function chooseRole(roles: [RoleInfo, RoleInfo], versionId: string): RoleInfo {
  const retried = roles.find((r) => r.marker?.status === 'live' && r.marker.versionId === versionId);
  if (retried) return retried;
  const rank = (r: RoleInfo): number => {
    if (!r.exists) return 0;
    if (r.marker?.status === 'revoked') return 1;
    if (!r.marker) return 2;
    return 3;
  };
  const [a, b] = roles;
  if (rank(a) !== rank(b)) return rank(a) < rank(b) ? a : b;
  if (!a.marker || !b.marker) return a.exists ? b : a;
  return a.marker.at <= b.marker.at ? a : b;
}

/** `ALTER ROLE` / `COMMENT ON ROLE` take no bind parameters; names are checked by the schema and quoted anyway. */
export const ident = (name: string): string => pg.escapeIdentifier(name);
export const literal = (text: string): string => pg.escapeLiteral(text);
