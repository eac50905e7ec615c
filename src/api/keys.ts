/**
 * Keys found by `rekey scan --check | --report` (issue 18): which of them are keys rekey
 * manages, in which state, and the leak path for those still live. The keys come in the body
 * (over the API's TLS, from a caller holding a token), are fingerprinted here with rekey's own
 * key and are never stored, logged or echoed: an answer names each key by its position in the
 * request and its prefix (`rk_live_`: never a character of its random part, as `rekey scan` prints it).
 * One of rekey's own admin API tokens (`rkadm_...`) is named as such, by its name: check says
 * whether it is live, report revokes it as a leak webhook's report does.
 */
import { z } from 'zod';
import { hasValidChecksum, keyPrefix } from '../core/key-format.js';
import { SecretValue } from '../core/secret-value.js';
import type { VersionState } from '../core/model.js';
import type { Runtime } from '../runtime.js';
import { route, type Caller } from './route.js';
import { foundToken, revokeLeakedToken } from './tokens.js';

/**
 * States in which the key may still work somewhere: at a target, or at its issuer (a retired one
 * until its revocation succeeds; a compromised one until its takedown ends). The leak path takes
 * down a version in each of them, as it does for a webhook's report.
 */
const LIVE: readonly VersionState[] = ['issuing', 'pending', 'current', 'previous', 'retired', 'compromised'];

const keysBody = z.object({ keys: z.array(z.string().min(36).max(300)).min(1).max(100) }).strict();

const found = z.object({
  index: z.number().int().describe('the position of the key in the request'),
  prefix: z.string().max(32).describe('its prefix: the characters before its random part and checksum (`rk_live_`), none of those'),
  secret: z.string().nullable().describe('null: no version rekey manages (or none of a secret the token may read) has this key; an admin API token is none'),
  version: z.number().int().nullable(),
  state: z.string().nullable().describe("the version's state; for an admin API token: active, expired or revoked (before this request)"),
  live: z.boolean().describe('a target or its issuer may still accept it: issuing, pending, current, previous, retired (not yet revoked at the issuer), or compromised and not yet taken down; an admin API token: active'),
  adminToken: z.string().nullable().describe("the name of the admin API token (`rkadm_...`) this key is, never the token itself; null: it is none"),
});

/** The keys' versions, each named only when the caller holds `scope` (or read) on its secret. */
async function lookUp(runtime: Runtime, caller: Caller, keys: readonly string[], scope: 'read' | 'revoke') {
  return Promise.all(
    keys.map(async (key, index) => {
      // Any caller who presents an admin token holds it, so may learn what it is: its name and state.
      const token = await foundToken(runtime.db, key);
      if (token) return { index, prefix: keyPrefix(key), secret: null, version: null, state: token.state, live: token.state === 'active', adminToken: token.name };
      // A string without a valid checksum is no rekey key: not even fingerprinted.
      const versions = hasValidChecksum(key) ? await runtime.engine.deps.repo.findVersionsByFingerprint(runtime.engine.deps.fingerprint(SecretValue.of(key))) : [];
      const seen = versions.filter((v) => caller.access.allows('read', v.secret) || caller.access.allows(scope, v.secret));
      // Two versions may share a value (an issuer that gave two secrets one token): the answer names a live one
      // the caller holds `scope` on first, so a token scoped to either secret sees, and reports, its own.
      const live = seen.filter((v) => LIVE.includes(v.state));
      const visible = live.find((v) => caller.access.allows(scope, v.secret)) ?? live[0] ?? seen[0] ?? null;
      return {
        index,
        prefix: keyPrefix(key),
        secret: visible?.secret ?? null,
        version: visible?.number ?? null,
        state: visible?.state ?? null,
        live: !!visible && LIVE.includes(visible.state),
        adminToken: null,
      };
    }),
  );
}

export const keyRoutes = [
  route({
    method: 'POST',
    path: '/keys/check',
    operationId: 'checkKeys',
    summary: 'Which of these keys (found by a scanner) rekey manages, their secret, version and state, and whether they are live',
    scope: 'read',
    reach: 'some',
    body: keysBody,
    response: z.object({ items: z.array(found) }),
    handler: async ({ runtime, caller, body }) => ({ items: await lookUp(runtime, caller, body.keys, 'read') }),
  }),
  route({
    method: 'POST',
    path: '/keys/report',
    operationId: 'reportKeys',
    summary: 'The leak path for every live key among these (found where it must not be): each version is revoked as by POST /secrets/{name}/versions/{number}/revoke, each admin API token revoked as a leak webhook revokes it',
    scope: 'revoke',
    reach: 'some',
    action: true,
    body: keysBody,
    response: z.object({ items: z.array(found.extend({ outcome: z.string().nullable().describe('the leak path outcome; `revoked` for an admin API token (whatever it was before: `live`, `state`); null: not live, or not a secret the token may revoke') })) }),
    handler: async ({ runtime, caller, body }) => {
      const items = [];
      // A token with revoke and no read (a scanner's) sees the secrets it may revoke: it must, to report their keys.
      for (const item of await lookUp(runtime, caller, body.keys, 'revoke')) {
        if (item.adminToken !== null) {
          // Presenting it proves the caller holds it, the bar a leak webhook's report meets: revoked (`token.revoked`,
          // reason leaked, by this caller) by the webhooks' own function, whatever its scopes and the caller's.
          await revokeLeakedToken(runtime.db, runtime.audit, body.keys[item.index]!, caller.actor);
          if (item.state !== 'revoked') runtime.log.warn({ tokenName: item.adminToken, actor: caller.actor }, 'admin API token reported leaked: revoked');
          items.push({ ...item, outcome: 'revoked' });
          continue;
        }
        const revocable = item.live && item.secret !== null && item.version !== null && caller.access.allows('revoke', item.secret);
        const outcome = revocable ? (await runtime.engine.as(caller.actor).revoke(item.secret!, item.version!)).outcome : null;
        items.push({ ...item, outcome });
      }
      return { items };
    },
  }),
];
