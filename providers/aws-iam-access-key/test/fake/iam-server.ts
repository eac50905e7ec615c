/**
 * A fake AWS IAM endpoint speaking IAM's Query protocol, for the access-key calls rekey makes:
 * POST form-encoded `Action=...&Version=2010-05-08&...`, XML responses in the
 * `https://iam.amazonaws.com/doc/2010-05-08/` namespace, `<ErrorResponse>` errors.
 *
 * Semantics follow the IAM API Reference:
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateAccessKey.html
 *     (new keys are Active; LimitExceeded, HTTP 409, past the quota; NoSuchEntity, 404, for an unknown user)
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListAccessKeys.html (AccessKeyMetadata members, IsTruncated)
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateAccessKey.html (Status Active | Inactive)
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteAccessKey.html
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/API_TagUser.html (Tags.member.N.Key/Value; an existing key's value is replaced)
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListUserTags.html (Tags members, IsTruncated)
 *   https://docs.aws.amazon.com/IAM/latest/APIReference/CommonErrors.html (ErrorResponse shape)
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html (2 access keys per user)
 * Requests must carry a SigV4 Authorization header for the configured access key id (the
 * signature itself is not checked). Binds 127.0.0.1 on a random port.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const NS = 'https://iam.amazonaws.com/doc/2010-05-08/';
const KEYS_PER_USER = 2;

export interface FakeKey {
  userName: string;
  accessKeyId: string;
  secretAccessKey: string;
  status: 'Active' | 'Inactive';
  createDate: Date;
}

export interface FakeIam {
  endpoint: string;
  /** Access key id the fake accepts in SigV4 Authorization headers. */
  callerKeyId: string;
  users: Map<string, FakeKey[]>;
  /** User name -> tag key -> value. */
  tags: Map<string, Map<string, string>>;
  /** Every Action received, in order. */
  calls: string[];
  /** Makes the next N requests answer this error (e.g. Throttling). */
  failNext(count: number, status: number, code: string): void;
  /**
   * Lets the next request for `action` take effect but holds its answer until `release()`
   * (an answer lost to a timeout); `reached` resolves once the action has taken effect.
   */
  holdAnswer(action: string): { reached: Promise<void>; release: () => void };
  close(): Promise<void>;
}

class IamError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startFakeIam(callerKeyId = 'AKIAFAKECALLER000001'): Promise<FakeIam> {
  const users = new Map<string, FakeKey[]>();
  const tags = new Map<string, Map<string, string>>();
  const calls: string[] = [];
  let failures: { count: number; status: number; code: string } | undefined;
  const holds: Array<{ action: string; reached: () => void; gate: Promise<void> }> = [];

  const keysOf = (params: URLSearchParams): FakeKey[] => {
    const name = params.get('UserName') ?? '';
    const keys = users.get(name);
    if (!keys) throw new IamError(404, 'NoSuchEntity', `The user with name ${name} cannot be found.`);
    return keys;
  };
  const keyOf = (params: URLSearchParams): FakeKey => {
    const id = params.get('AccessKeyId') ?? '';
    const key = keysOf(params).find((k) => k.accessKeyId === id);
    if (!key) throw new IamError(404, 'NoSuchEntity', `The Access Key with id ${id} cannot be found.`);
    return key;
  };

  const actions: Record<string, (params: URLSearchParams) => string> = {
    CreateAccessKey(params) {
      const keys = keysOf(params);
      if (keys.length >= KEYS_PER_USER) {
        throw new IamError(409, 'LimitExceeded', `Cannot exceed quota for AccessKeysPerUser: ${KEYS_PER_USER}`);
      }
      const key: FakeKey = {
        userName: params.get('UserName')!,
        accessKeyId: `AKIA${randomBytes(10).toString('hex').toUpperCase().slice(0, 16)}`,
        secretAccessKey: randomBytes(30).toString('base64'),
        status: 'Active',
        createDate: new Date(),
      };
      keys.push(key);
      return `<AccessKey>${fields(key)}<SecretAccessKey>${key.secretAccessKey}</SecretAccessKey></AccessKey>`;
    },
    ListAccessKeys(params) {
      const members = keysOf(params).map((key) => `<member>${fields(key)}</member>`).join('');
      return `<AccessKeyMetadata>${members}</AccessKeyMetadata><IsTruncated>false</IsTruncated>`;
    },
    UpdateAccessKey(params) {
      const status = params.get('Status');
      if (status !== 'Active' && status !== 'Inactive') throw new IamError(400, 'ValidationError', 'Status must be Active or Inactive');
      keyOf(params).status = status;
      return '';
    },
    TagUser(params) {
      keysOf(params); // NoSuchEntity for an unknown user
      const own = tags.get(params.get('UserName')!) ?? new Map<string, string>();
      for (let i = 1; params.has(`Tags.member.${i}.Key`); i++) own.set(params.get(`Tags.member.${i}.Key`)!, params.get(`Tags.member.${i}.Value`) ?? '');
      tags.set(params.get('UserName')!, own);
      return '';
    },
    ListUserTags(params) {
      keysOf(params);
      const members = [...(tags.get(params.get('UserName')!) ?? [])].map(([key, value]) => `<member><Key>${key}</Key><Value>${value}</Value></member>`);
      return `<Tags>${members.join('')}</Tags><IsTruncated>false</IsTruncated>`;
    },
    DeleteAccessKey(params) {
      const key = keyOf(params);
      const keys = users.get(key.userName)!;
      keys.splice(keys.indexOf(key), 1);
      return '';
    },
  };

  const handle = (req: IncomingMessage, body: string): { status: number; xml: string; action: string } => {
    const requestId = randomUUID();
    let action = '';
    try {
      if (req.method !== 'POST') throw new IamError(400, 'InvalidAction', 'IAM Query API requests are POST');
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith(`AWS4-HMAC-SHA256 Credential=${callerKeyId}/`)) {
        throw new IamError(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
      }
      const params = new URLSearchParams(body);
      action = params.get('Action') ?? '';
      calls.push(action);
      if (params.get('Version') !== '2010-05-08') throw new IamError(400, 'InvalidParameterValue', 'Version must be 2010-05-08');
      if (failures && failures.count > 0) {
        failures.count -= 1;
        throw new IamError(failures.status, failures.code, 'injected failure');
      }
      const run = actions[action];
      if (!run) throw new IamError(400, 'InvalidAction', `Could not find operation ${action} for version 2010-05-08`);
      const result = run(params);
      const inner = result ? `<${action}Result>${result}</${action}Result>` : '';
      return {
        status: 200,
        action,
        xml: `<${action}Response xmlns="${NS}">${inner}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
      };
    } catch (error) {
      const e = error instanceof IamError ? error : new IamError(500, 'ServiceFailure', 'internal error');
      const type = e.status >= 500 ? 'Receiver' : 'Sender';
      return {
        status: e.status,
        action,
        xml: `<ErrorResponse xmlns="${NS}"><Error><Type>${type}</Type><Code>${e.code}</Code><Message>${e.message}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      };
    }
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const { status, xml, action } = handle(req, Buffer.concat(chunks).toString('utf8'));
      const answer = () => {
        res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() });
        res.end(xml);
      };
      const held = holds.findIndex((h) => h.action === action);
      if (held === -1) return answer();
      const { reached, gate } = holds.splice(held, 1)[0]!;
      reached();
      void gate.then(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    callerKeyId,
    users,
    tags,
    calls,
    failNext(count, status, code) {
      failures = { count, status, code };
    },
    holdAnswer(action) {
      let reached!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((resolve) => (reached = resolve));
      const gate = new Promise<void>((resolve) => (release = resolve));
      holds.push({ action, reached, gate });
      return { reached: arrived, release };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function fields(key: FakeKey): string {
  return `<UserName>${key.userName}</UserName><AccessKeyId>${key.accessKeyId}</AccessKeyId><Status>${key.status}</Status><CreateDate>${key.createDate.toISOString()}</CreateDate>`;
}
