/**
 * The admin API's read operations called in process, for the CLI (`rekey history`, `rekey audit
 * log`): the same declarations, schemas and handlers as /api/v1, answers stripped to the same
 * schemas, so the command line and the API show one read model. The caller is the operator
 * holding DATABASE_URL, who may read everything the database holds anyway.
 */
import type { Runtime } from '../runtime.js';
import type { Caller } from './route.js';
import { apiRoutes } from './routes.js';
import { Access } from './scopes.js';

const OPERATOR: Caller = {
  principal: { id: 'cli', name: 'cli', scopes: ['read'] },
  access: new Access(['read']),
  actor: 'cli',
};

/**
 * Runs the read operation `operationId` (e.g. `listAuditEvents`) with these path and query
 * parameters, as the API would parse them from a request.
 * @throws ZodError when a parameter is not what the operation takes; the handler's own errors (ApiProblem) as they are.
 */
export async function readOperation(runtime: Runtime, operationId: string, input: { params?: object; query?: object }): Promise<unknown> {
  const definition = apiRoutes.find((r) => r.operationId === operationId && r.method === 'GET');
  if (!definition) throw new Error(`the admin API has no read operation ${operationId}`);
  const params: unknown = definition.params ? definition.params.parse(input.params ?? {}) : {};
  const query: unknown = definition.query ? definition.query.parse(input.query ?? {}) : {};
  return definition.response.parse(await definition.handler({ runtime, caller: OPERATOR, params, query, body: {}, idempotencyKey: undefined }));
}
