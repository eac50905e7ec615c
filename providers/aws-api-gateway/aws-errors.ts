/**
 * API Gateway's part of mapping SDK errors (src/core/kit/aws-errors.ts reads the rest): the operations
 * and the `apigateway:<METHOD>` each needs.
 */
import { awsProviderError } from '../../src/core/kit/aws-errors.js';
import type { ProviderError } from '../../src/core/errors.js';

/** The API Gateway operations this target calls; `apigateway:<METHOD>` grants them (README). */
export type ApiGatewayOperation =
  | 'GetApiKeys'
  | 'GetApiKey'
  | 'CreateApiKey'
  | 'UpdateApiKey'
  | 'DeleteApiKey'
  | 'CreateUsagePlanKey'
  | 'GetUsagePlanKey'
  | 'GetUsagePlanKeys'
  | 'DeleteUsagePlanKey'
  | 'GetUsage';

const IAM_METHOD: Record<ApiGatewayOperation, string> = {
  GetApiKeys: 'GET',
  GetApiKey: 'GET',
  CreateApiKey: 'POST',
  UpdateApiKey: 'PATCH',
  DeleteApiKey: 'DELETE',
  CreateUsagePlanKey: 'POST',
  GetUsagePlanKey: 'GET',
  GetUsagePlanKeys: 'GET',
  DeleteUsagePlanKey: 'DELETE',
  GetUsage: 'GET',
};

/** Wraps an SDK error in a ProviderError naming the call and, when denied, the method to grant. */
export function apiGatewayError(error: unknown, o: { provider: string; operation: ApiGatewayOperation; what: string; signal: AbortSignal }): ProviderError {
  return awsProviderError(error, {
    provider: o.provider,
    call: `${o.operation} (${o.what})`,
    grant: `apigateway:${IAM_METHOD[o.operation]} on this resource (see providers/aws-api-gateway/README.md)`,
    signal: o.signal,
  });
}
