/**
 * Actions: rotate now, revoke a version, decommission, re-run a drift check (verifying the
 * audit log: ./verifications.ts). Each goes through the engine or the function the CLI uses for the same thing, acting as
 * the caller (`token:<name>` in the audit log), and is answered again for a retried
 * `Idempotency-Key` (src/api/routes.ts).
 */
import { z } from 'zod';
import { STORE_FINDINGS, type StoreCheckResult } from '../core/sync.js';
import { ApiProblem } from './problems.js';
import { positiveInt, route, secretParams } from './route.js';

/**
 * The store check's finding for the secret (src/core/store-drift.ts): ids, numbers and states. Null when its store was
 * not compared (no current version, or a rotation running or run meanwhile, which moves the store's stages itself).
 */
const storeCheck = z
  .object({
    provider: z.string(),
    found: z.enum(STORE_FINDINGS).nullable(),
    storeCurrent: z.object({ storeVersionId: z.string(), number: z.number().int().nullable(), state: z.string().nullable() }).nullable(),
    rekeyCurrent: z.number().int().nullable(),
    repaired: z.boolean(),
    error: z.string().nullable(),
  })
  .nullable();

function storeAnswer(r: StoreCheckResult): NonNullable<z.infer<typeof storeCheck>> {
  const held = r.storeCurrent;
  return {
    provider: r.store,
    found: r.found ?? null,
    storeCurrent: held ? { storeVersionId: held.storeVersionId, number: held.number ?? null, state: held.state ?? null } : null,
    rekeyCurrent: r.rekeyCurrent ?? null,
    repaired: r.repaired,
    error: r.error ?? null,
  };
}

export const actionRoutes = [
  route({
    method: 'POST',
    path: '/secrets/:name/rotate',
    operationId: 'rotateSecret',
    summary: 'Rotate now; a rotation already running is joined, not duplicated',
    scope: 'rotate',
    reach: 'secret',
    action: true,
    status: 202,
    params: secretParams,
    response: z.object({ runId: z.string(), status: z.enum(['queued', 'joined']) }),
    handler: async ({ runtime, caller, params, idempotencyKey }) => {
      const result = await runtime.engine.as(caller.actor).requestRotation({
        secret: params.name,
        trigger: 'manual',
        // The engine's own key too: a retry after a failure that lost the API's record still makes one run.
        // It names the secret (names hold no `:`): the engine's keys never expire, and a key used again
        // for another secret once the API's answer expired would otherwise be answered with the first one's run.
        ...(idempotencyKey ? { idempotencyKey: `api:${caller.principal.id}:${params.name}:${idempotencyKey}` } : {}),
      });
      if (result.status === 'stale') throw new ApiProblem('REKEY_API_CONFLICT'); // manual requests are never stale
      return { runId: result.run.id, status: result.status };
    },
  }),
  route({
    method: 'POST',
    path: '/secrets/:name/versions/:number/revoke',
    operationId: 'revokeVersion',
    summary: "Revoke one version now: the leak path (retired everywhere, revoked upstream; a current version is replaced per the secret's onLeak)",
    scope: 'revoke',
    reach: 'secret',
    action: true,
    params: secretParams.extend({ number: positiveInt() }),
    response: z.object({ outcome: z.string(), versionId: z.string().nullable() }),
    handler: async ({ runtime, caller, params }) => {
      const record = await runtime.engine.as(caller.actor).revoke(params.name, params.number);
      return { outcome: record.outcome, versionId: record.versionId };
    },
  }),
  route({
    method: 'POST',
    path: '/secrets/:name/decommission',
    operationId: 'decommissionSecret',
    summary: 'For a secret removed from rekey.yaml: retire and revoke every live key of it everywhere (its history is kept)',
    scope: 'revoke',
    reach: 'secret',
    action: true,
    status: 202,
    params: secretParams,
    response: z.object({ versions: z.array(z.number().int()) }),
    handler: async ({ runtime, caller, params }) => ({ versions: (await runtime.engine.as(caller.actor).decommission(params.name)).map((v) => v.number) }),
  }),
  route({
    method: 'POST',
    path: '/secrets/:name/drift-check',
    operationId: 'checkDrift',
    summary:
      "Compare every target of the secret with the keys it must accept and refuse now, and the store's current stage with rekey's current version (as `rekey verify` does); repair what differs as the workers' drift check and the full reconcile pass do",
    scope: 'rotate',
    reach: 'secret',
    action: true,
    params: secretParams,
    body: z.object({ repair: z.boolean().default(true) }).strict(),
    response: z.object({
      inSync: z.boolean(),
      targets: z.array(
        z.object({
          target: z.string(),
          method: z.enum(['inspect', 'probe']),
          missing: z.array(z.number().int()),
          unwanted: z.array(z.number().int()),
          redeployed: z.array(z.number().int()),
          retiring: z.array(z.number().int()),
          error: z.string().nullable(),
        }),
      ),
      store: storeCheck,
    }),
    handler: async ({ runtime, caller, params, body }) => {
      if (!(await runtime.db.secret.findUnique({ where: { name: params.name }, select: { id: true } }))) throw new ApiProblem('REKEY_API_NOT_FOUND', `no secret named ${params.name}`);
      // As the caller: what a repair records (store.drift, a drift target's events) names its token, as the other actions do.
      const engine = runtime.engine.as(caller.actor);
      const reports = await runtime.drift.checkNow([params.name], (target, secrets) => engine.checkTarget(target, secrets, { repair: body.repair }));
      const targets = reports.flatMap((report) => report.results.map((r) => ({ target: report.target, method: r.method, missing: r.missing, unwanted: r.unwanted, redeployed: r.redeployed, retiring: r.retiring, error: r.error ?? null })));
      const [checked] = (await engine.checkStores([params.name], { repair: body.repair })).results;
      const store = checked ? storeAnswer(checked) : null;
      const storeInSync = !store || (store.found === 'in-sync' && !store.error);
      return { inSync: storeInSync && targets.every((t) => !t.error && !t.missing.length && !t.unwanted.length), targets, store };
    },
  }),
];
