/**
 * Maps API Gateway SDK errors to rekey's ProviderError codes. AWS's own message is not copied
 * into ours (a conflict on CreateApiKey is about the value); the SDK error rides as `cause`.
 */
import { ProviderError, type ErrorCode } from '../../src/core/errors.js';

/** The API Gateway operations this target calls; `apigateway:<METHOD>` grants them (README). */
export type ApiGatewayOperation =
  | 'GetApiKeys'
  | 'GetApiKey'
  | 'CreateApiKey'
  | 'UpdateApiKey'
  | 'DeleteApiKey'
  | 'CreateUsagePlanKey'
  | 'GetUsagePlanKey'
  | 'DeleteUsagePlanKey';

const IAM_METHOD: Record<ApiGatewayOperation, string> = {
  GetApiKeys: 'GET',
  GetApiKey: 'GET',
  CreateApiKey: 'POST',
  UpdateApiKey: 'PATCH',
  DeleteApiKey: 'DELETE',
  CreateUsagePlanKey: 'POST',
  GetUsagePlanKey: 'GET',
  DeleteUsagePlanKey: 'DELETE',
};

interface AwsErrorShape {
  name?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

const DENIED = new Set(['AccessDeniedException', 'UnauthorizedException', 'UnrecognizedClientException', 'InvalidSignatureException', 'ExpiredTokenException', 'CredentialsProviderError']);

/** The SDK error's name, e.g. `NotFoundException`. */
export function errorName(error: unknown): string | undefined {
  return (error as AwsErrorShape | undefined)?.name;
}

export function apiGatewayError(error: unknown, o: { provider: string; operation: ApiGatewayOperation; what: string; signal: AbortSignal }): ProviderError {
  if (error instanceof ProviderError) return error;
  const e = (error ?? {}) as AwsErrorShape;
  const name = e.name ?? 'Error';
  const where = `${o.operation} (${o.what}) failed with ${name}`;
  const make = (code: ErrorCode, message: string) => new ProviderError(code, message, { provider: o.provider, cause: error });
  if (o.signal.aborted || name === 'AbortError') return make('REKEY_ERR_TIMEOUT', `${o.operation} (${o.what}) was aborted (timeout or shutdown)`);
  if (name === 'TooManyRequestsException' || name === 'LimitExceededException' || name === 'ThrottlingException') return make('REKEY_ERR_THROTTLED', where);
  if (DENIED.has(name)) {
    return make('REKEY_ERR_DENIED', `${where}: rekey's role needs apigateway:${IAM_METHOD[o.operation]} on this resource (see providers/aws-api-gateway/README.md)`);
  }
  if (name === 'NotFoundException') return make('REKEY_ERR_NOT_FOUND', where);
  if (name === 'ConflictException') return make('REKEY_ERR_CONFLICT', where);
  if (name === 'BadRequestException') return make('REKEY_ERR_INVALID', where);
  const status = e.$metadata?.httpStatusCode;
  if (e.$fault === 'server' || (status !== undefined && status >= 500) || status === undefined) {
    return make('REKEY_ERR_UNAVAILABLE', `${where}${status === undefined ? ': API Gateway could not be reached' : ''}`);
  }
  return make('REKEY_ERR_INVALID', `${where} (HTTP ${status})`);
}
