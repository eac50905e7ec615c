/**
 * Keys found by `rekey scan --check | --report` (issue 18): which of them are keys rekey
 * manages, in which state, and the leak path for those still live. The keys come in the body
 * (over the API's TLS, from a caller holding a token), are fingerprinted here with rekey's own
 * key and are never stored, logged or echoed: an answer names each key by its position in the
 * request and its prefix (`rk_live_`: never a character of its random part, as `rekey scan` prints it).
 */
import { z } from 'zod';
import { hasValidChecksum, keyPrefix } from '../core/key-format.js';
import { SecretValue } from '../core/secret-value.js';
import type { VersionState } from '../core/model.js';
import type { Runtime } from '../runtime.js';
import { route, type Caller } from './route.js';

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
  secret: z.string().nullable().describe('null: no version rekey manages (or none of a secret the token may read) has this key'),
  version: z.number().int().nullable(),
  state: z.string().nullable(),
  live: z.boolean().describe('a target or its issuer may still accept it: issuing, pending, current, previous, retired (not yet revoked at the issuer), or compromised and not yet taken down'),
});

/** The keys' versions, each named only when the caller holds `scope` (or read) on its secret. */
async function lookUp(runtime: Runtime, caller: Caller, keys: readonly string[], scope: 'read' | 'revoke') {
  return Promise.all(
    keys.map(async (key, index) => {
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
    summary: "The leak path for every live key among these (found where it must not be): each version is revoked as by POST /secrets/{name}/versions/{number}/revoke",
    scope: 'revoke',
    reach: 'some',
    action: true,
    body: keysBody,
    response: z.object({ items: z.array(found.extend({ outcome: z.string().nullable().describe('the leak path outcome; null: not live, or not a secret the token may revoke') })) }),
    handler: async ({ runtime, caller, body }) => {
      const items = [];
      // A token with revoke and no read (a scanner's) sees the secrets it may revoke: it must, to report their keys.
      for (const item of await lookUp(runtime, caller, body.keys, 'revoke')) {
        const revocable = item.live && item.secret !== null && item.version !== null && caller.access.allows('revoke', item.secret);
        const outcome = revocable ? (await runtime.engine.as(caller.actor).revoke(item.secret!, item.version!)).outcome : null;
        items.push({ ...item, outcome });
      }
      return { items };
    },
  }),
];
