/**
 * What both transports of the fake share in front of the model: every call is counted per method,
 * and failures are injected here, so a test injects the same fault whichever transport the client
 * uses. The gRPC and REST servers only translate requests in and answers (or GrpcErrors) out.
 */
import { status } from '@grpc/grpc-js';
import { PERMISSION, type GcpMethod } from '../../gcp-errors.js';
import { GrpcError, field, type SecretManagerModel } from './secret-manager-model.js';

export const METHODS = [
  'CreateSecret',
  'GetSecret',
  'UpdateSecret',
  'AddSecretVersion',
  'AccessSecretVersion',
  'GetSecretVersion',
  'ListSecretVersions',
  'DisableSecretVersion',
  'DestroySecretVersion',
] as const satisfies readonly GcpMethod[];
export type Method = (typeof METHODS)[number];

type Message = Record<string, unknown>;

interface Injection {
  method: Method | undefined;
  remaining: number;
}

interface Failure extends Injection {
  error: GrpcError;
}

/** A handled call: the model's answer, or `lost` when the transport must drop the connection instead. */
export type Outcome = { response: Message; lost: false } | { lost: true };

export class Faults {
  /** Calls received per method, including those answered with an injected failure. */
  readonly calls: Record<string, number> = {};
  readonly #failures: Failure[] = [];
  readonly #losses: Injection[] = [];
  readonly #denied = new Set<Method>();
  readonly #hooks = new Map<Method, (model: SecretManagerModel) => void>();
  readonly #holds = new Map<Method, { arrive: () => void; released: Promise<void> }>();

  constructor(readonly model: SecretManagerModel) {}

  resetCalls(): void {
    for (const key of Object.keys(this.calls)) delete this.calls[key];
  }

  /** Answers the next `n` calls (of `method`, or of any) with RESOURCE_EXHAUSTED. */
  exhaust(n: number, method?: Method): void {
    const quota = "Quota exceeded for quota metric 'Access requests' of service 'secretmanager.googleapis.com'.";
    this.#failures.push({ method, remaining: n, error: new GrpcError(status.RESOURCE_EXHAUSTED, quota) });
  }

  /** Answers the next `n` calls (of `method`, or of any) with status `code`, without running them. */
  fail(code: status, n = 1, method?: Method): void {
    this.#failures.push({ method, remaining: n, error: new GrpcError(code, `${status[code]} (injected by the fake)`) });
  }

  /** Performs the next `n` calls of `method`, then drops the connection before the answer. */
  loseResponse(method: Method, n = 1): void {
    this.#losses.push({ method, remaining: n });
  }

  /** Answers every call of `method` with PERMISSION_DENIED until allow(). */
  deny(method: Method): void {
    this.#denied.add(method);
  }

  allow(method: Method): void {
    this.#denied.delete(method);
  }

  /** Runs `hook` once, just before the next call of `method` is handled. */
  before(method: Method, hook: (model: SecretManagerModel) => void): void {
    this.#hooks.set(method, hook);
  }

  /**
   * Holds the next call of `method` before it is handled, until release(): `arrived` settles when the
   * call is waiting, so a test can run other calls in between (a request that lands between two
   * calls of another caller).
   */
  hold(method: Method): { arrived: Promise<void>; release: () => void } {
    let arrive!: () => void;
    let release!: () => void;
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.#holds.set(method, { arrive, released });
    return { arrived, release };
  }

  /** Counts one call of `method` (transports call it first, even for calls they fail themselves). */
  count(method: Method): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
  }

  /** Runs a counted call through the injected faults (a hold included) and the model. @throws GrpcError */
  async handle(method: Method, request: Message): Promise<Outcome> {
    const resource = field(request, 'name') || field(request, 'parent') || field(request.secret as Message | undefined, 'name');
    if (this.#denied.has(method)) {
      throw new GrpcError(status.PERMISSION_DENIED, `Permission '${PERMISSION[method]}' denied for resource '${resource}' (or it may not exist).`);
    }
    const failure = take(this.#failures, method);
    if (failure) throw failure.error;
    const hold = this.#holds.get(method);
    if (hold) {
      this.#holds.delete(method);
      hold.arrive();
      await hold.released;
    }
    const hook = this.#hooks.get(method);
    this.#hooks.delete(method);
    hook?.(this.model);
    const response = this.model[method](request);
    return take(this.#losses, method) ? { lost: true } : { response, lost: false };
  }
}

/** Consumes one use of the first injection matching `method`. */
export function take<T extends Injection>(list: T[], method: Method): T | undefined {
  const hit = list.find((i) => i.remaining > 0 && (i.method === undefined || i.method === method));
  if (hit) hit.remaining -= 1;
  return hit;
}
