/**
 * A local AWS Secrets Manager for tests: an HTTP server on 127.0.0.1 speaking the AWS JSON 1.1
 * protocol (POST /, `X-Amz-Target: secretsmanager.<Operation>`, `Content-Type:
 * application/x-amz-json-1.1`, errors as `{"__type": ..., "message": ...}` with a 4xx/5xx status).
 * https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html
 * The official @aws-sdk/client-secrets-manager talks to it through `endpoint`. Semantics of the
 * operations live in secrets-model.ts (with their documentation links). Error names follow
 * https://docs.aws.amazon.com/secretsmanager/latest/apireference/CommonErrors.html
 * (ThrottlingException, AccessDeniedException: HTTP 400; InternalServiceError: 500).
 *
 * Failure injection: throttle the next N calls, deny an operation, fail with a 5xx, and "lose" a
 * response: perform the operation, then drop the connection without answering, as a network
 * failure after the server committed would. Every call is counted per operation.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AwsApiError, SecretsModel } from './secrets-model.js';
import { readBody } from '../../../../test/support/fake-http.js';

const OPERATIONS = [
  'CreateSecret',
  'DescribeSecret',
  'GetSecretValue',
  'ListSecretVersionIds',
  'PutSecretValue',
  'TagResource',
  'UntagResource',
  'UpdateSecretVersionStage',
] as const;
export type Operation = (typeof OPERATIONS)[number];

interface Injection {
  operation: Operation | undefined;
  remaining: number;
}

export interface FakeSecretsManager {
  /** `http://127.0.0.1:<port>`, for the SDK's `endpoint`. */
  endpoint: string;
  model: SecretsModel;
  /** Calls received per operation, including those answered with an injected failure. */
  calls: Record<string, number>;
  resetCalls(): void;
  /** Answers the next `n` calls (of `operation`, or of any) with ThrottlingException. */
  throttle(n: number, operation?: Operation): void;
  /** Answers the next `n` calls with InternalServiceError (HTTP 500). */
  fail(n: number, operation?: Operation): void;
  /** Performs the next `n` calls of `operation`, then drops the connection instead of answering. */
  loseResponse(operation: Operation, n?: number): void;
  /** Answers every call of `operation` with AccessDeniedException until allow(). */
  deny(operation: Operation): void;
  allow(operation: Operation): void;
  close(): Promise<void>;
}

/** Starts a fake on 127.0.0.1 and a random port. */
export async function startFakeSecretsManager(): Promise<FakeSecretsManager> {
  const model = new SecretsModel();
  const calls: Record<string, number> = {};
  const throttles: Injection[] = [];
  const failures: Injection[] = [];
  const losses: Injection[] = [];
  const denied = new Set<Operation>();

  const take = (list: Injection[], operation: Operation): boolean => {
    const hit = list.find((i) => i.remaining > 0 && (i.operation === undefined || i.operation === operation));
    if (hit) hit.remaining -= 1;
    return hit !== undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    const target = req.headers['x-amz-target'];
    const operation = typeof target === 'string' && target.startsWith('secretsmanager.') ? target.slice('secretsmanager.'.length) : '';
    try {
      if (req.method !== 'POST' || !String(req.headers['content-type']).startsWith('application/x-amz-json-1.1')) {
        throw new AwsApiError('SerializationException', 'Expected POST with application/x-amz-json-1.1');
      }
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 Credential=')) {
        throw new AwsApiError('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
      }
      if (!(OPERATIONS as readonly string[]).includes(operation)) {
        throw new AwsApiError('UnknownOperationException', `The fake does not implement ${operation || '(no target)'}`);
      }
      const op = operation as Operation;
      calls[op] = (calls[op] ?? 0) + 1;
      const input = JSON.parse(body || '{}') as Record<string, unknown>;
      if (denied.has(op)) {
        throw new AwsApiError(
          'AccessDeniedException',
          `User: arn:aws:sts::${model.account}:assumed-role/rekey-test/session is not authorized to perform: ` +
            `secretsmanager:${op} on resource: ${String(input.SecretId ?? input.Name)} because no identity-based policy ` +
            `allows the secretsmanager:${op} action`,
        );
      }
      if (take(throttles, op)) throw new AwsApiError('ThrottlingException', 'Rate exceeded');
      if (take(failures, op)) throw new AwsApiError('InternalServiceError', 'An error occurred on the server side.', 500);
      const output = model[op](input);
      if (take(losses, op)) {
        // The write is done; the client never hears about it.
        req.socket.destroy();
        return;
      }
      send(res, 200, output);
    } catch (error) {
      if (!(error instanceof AwsApiError)) throw error;
      res.setHeader('x-amzn-ErrorType', error.type);
      send(res, error.status, { __type: error.type, message: error.message });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      send(res, 500, { __type: 'InternalServiceError', message: error instanceof Error ? error.message : 'fake failed' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    model,
    calls,
    resetCalls: () => {
      for (const key of Object.keys(calls)) delete calls[key];
    },
    throttle: (n, operation) => void throttles.push({ operation, remaining: n }),
    fail: (n, operation) => void failures.push({ operation, remaining: n }),
    loseResponse: (operation, n = 1) => void losses.push({ operation, remaining: n }),
    deny: (operation) => void denied.add(operation),
    allow: (operation) => void denied.delete(operation),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-RequestId': randomUUID(),
  });
  res.end(text);
}
