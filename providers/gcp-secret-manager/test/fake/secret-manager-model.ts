/**
 * In-memory model of Google Secret Manager's secrets, versions, aliases and etags, for the gRPC
 * fake next to it. Messages use the proto field names (snake_case). Semantics follow:
 *
 * - Version aliases: https://cloud.google.com/secret-manager/docs/assign-alias-to-secret-version
 *   and Secret.version_aliases in resources.proto: an alias starts with a letter, has at most 63
 *   letters, digits, `-` and `_`, is not `latest` or `new` (any case), at most 50 per secret; set
 *   with UpdateSecret, usable in place of a version number by AccessSecretVersion/GetSecretVersion.
 *   `latest` is the most recently created version, whatever its aliases.
 * - ETags: https://cloud.google.com/secret-manager/docs/etags. secrets.patch (UpdateSecret) and the
 *   version state changes take an optional etag; a mismatch fails with FAILED_PRECONDITION. ETags
 *   are made at creation (CreateSecret, AddSecretVersion) and change on every modification, no-ops
 *   included; a version's etag and its secret's etag are independent.
 * - Annotations (resources.proto): keys 1-63 characters, alphanumeric at both ends, `-_.` inside;
 *   keys and values together under 16 KiB.
 * - Version states: https://cloud.google.com/secret-manager/docs/disable-secret-version and
 *   /destroy-secret-version. Only ENABLED versions can be accessed (otherwise FAILED_PRECONDITION);
 *   destroying discards the data for good; a destroyed version cannot be disabled or destroyed again.
 * - AddSecretVersion verifies `data_crc32c` when given (SecretPayload in resources.proto) and
 *   stores a checksum that AccessSecretVersion returns.
 * - Resource names in responses carry the project number, as the service returns them.
 * - Rotation and topics: https://cloud.google.com/secret-manager/docs/secret-rotation and Rotation /
 *   Topic in resources.proto. At most 10 topics named `projects/*\/topics/*`; "Secret.topics must be
 *   set to configure rotation"; next_rotation_time at least 300 s in the future, required when
 *   rotation_period is set; rotation_period whole seconds from 3600 to 3153600000 and input only
 *   (never returned). rotationNotification() is what the service publishes at next_rotation_time
 *   (https://cloud.google.com/secret-manager/docs/event-notifications: attributes eventType
 *   SECRET_ROTATE, dataFormat JSON_API_V1, secretId, timestamp; data the Secret as JSON), and it
 *   advances next_rotation_time by the period as the service does. The service agent's publish
 *   permission on the topics is not checked.
 * Delayed destruction (version_destroy_ttl) and regional secrets are not modelled.
 */
import { status } from '@grpc/grpc-js';
import { crc32c } from '../../crc32c.js';

export class GrpcError extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
  ) {
    super(details);
  }
}

type State = 'ENABLED' | 'DISABLED' | 'DESTROYED';

export interface FakeVersion {
  number: number;
  state: State;
  data: Buffer | undefined;
  crc: number | undefined;
  clientChecksum: boolean;
  created: Date;
  destroyed: Date | undefined;
  etag: string;
}

export interface FakeSecret {
  id: string;
  created: Date;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  aliases: Record<string, number>;
  replication: unknown;
  etag: string;
  versions: FakeVersion[];
  topics: string[];
  rotation: { next: Date | undefined; periodSeconds: number | undefined } | undefined;
}

type Message = Record<string, unknown>;

/** A string field of a request message ('' when absent, as proto3 would have it). */
export const field = (m: Message | undefined, key: string): string => (typeof m?.[key] === 'string' ? m[key] : '');

const ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
const ANNOTATION_KEY = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const UPDATABLE = new Set(['labels', 'annotations', 'version_aliases', 'topics', 'rotation']);
const TOPIC = /^projects\/[^/]+\/topics\/[^/]+$/;

let etagCounter = 0;
const newEtag = () => `"${Date.now().toString(16)}${(etagCounter++).toString(16).padStart(4, '0')}"`;
const timestamp = (d: Date) => ({ seconds: String(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1e6 });

export class SecretManagerModel {
  /** Secrets by id, in the one project this fake serves. */
  readonly secrets = new Map<string, FakeSecret>();

  constructor(
    readonly project: string,
    readonly projectNumber = '123456789012',
  ) {}

  CreateSecret(req: Message): Message {
    this.#project(field(req, 'parent'));
    const id = field(req, 'secret_id');
    if (!/^[A-Za-z0-9_-]{1,255}$/.test(id)) throw new GrpcError(status.INVALID_ARGUMENT, 'invalid secret_id');
    const input = (req.secret ?? {}) as Message;
    if (!input.replication) throw new GrpcError(status.INVALID_ARGUMENT, 'Secret.replication is required');
    if (this.secrets.has(id)) throw new GrpcError(status.ALREADY_EXISTS, `Secret [${this.#secretName(id)}] already exists.`);
    const secret: FakeSecret = {
      id,
      created: new Date(),
      labels: { ...((input.labels as Record<string, string>) ?? {}) },
      annotations: this.#annotations((input.annotations as Record<string, string>) ?? {}),
      aliases: {},
      replication: input.replication,
      etag: newEtag(),
      versions: [],
      topics: this.#topics(input.topics),
      rotation: undefined,
    };
    secret.rotation = this.#rotation(secret.topics, input.rotation);
    this.secrets.set(id, secret);
    return this.#secretMessage(secret);
  }

  GetSecret(req: Message): Message {
    return this.#secretMessage(this.#secret(field(req, 'name')));
  }

  UpdateSecret(req: Message): Message {
    const input = (req.secret ?? {}) as Message;
    const secret = this.#secret(field(input, 'name'));
    const paths = ((req.update_mask as Message | undefined)?.paths as string[] | undefined) ?? [];
    if (!paths.length) throw new GrpcError(status.INVALID_ARGUMENT, 'update_mask is required');
    for (const path of paths) if (!UPDATABLE.has(path)) throw new GrpcError(status.INVALID_ARGUMENT, `update_mask path not supported: ${path}`);
    if (input.etag && input.etag !== secret.etag) {
      throw new GrpcError(status.FAILED_PRECONDITION, `The etag provided in the request does not match the current etag of secret [${this.#secretName(secret.id)}].`);
    }
    // Validate everything before changing anything.
    const aliases = paths.includes('version_aliases') ? this.#aliases(secret, (input.version_aliases as Record<string, string>) ?? {}) : secret.aliases;
    const annotations = paths.includes('annotations') ? this.#annotations((input.annotations as Record<string, string>) ?? {}) : secret.annotations;
    const topics = paths.includes('topics') ? this.#topics(input.topics) : secret.topics;
    const rotation = paths.includes('rotation') ? this.#rotation(topics, input.rotation) : secret.rotation;
    if (rotation?.next && !topics.length) throw new GrpcError(status.INVALID_ARGUMENT, 'Secret.topics must be set to configure rotation.');
    secret.topics = topics;
    secret.rotation = rotation;
    if (paths.includes('labels')) secret.labels = { ...((input.labels as Record<string, string>) ?? {}) };
    secret.aliases = aliases;
    secret.annotations = annotations;
    secret.etag = newEtag();
    return this.#secretMessage(secret);
  }

  AddSecretVersion(req: Message): Message {
    const secret = this.#secret(field(req, 'parent'));
    const payload = (req.payload ?? {}) as Message;
    const data = payload.data instanceof Buffer ? payload.data : Buffer.alloc(0);
    if (data.length > 64 * 1024) throw new GrpcError(status.INVALID_ARGUMENT, 'Secret payload data must be no larger than 64KiB');
    const sum = crc32c(data);
    if (payload.data_crc32c !== undefined && payload.data_crc32c !== null && Number(payload.data_crc32c) !== sum) {
      throw new GrpcError(status.INVALID_ARGUMENT, 'Checksum mismatch: the data_crc32c does not match the received data');
    }
    const version: FakeVersion = {
      number: secret.versions.length + 1,
      state: 'ENABLED',
      data,
      crc: sum,
      clientChecksum: payload.data_crc32c !== undefined && payload.data_crc32c !== null,
      created: new Date(),
      destroyed: undefined,
      etag: newEtag(),
    };
    secret.versions.push(version);
    return this.#versionMessage(secret, version);
  }

  AccessSecretVersion(req: Message): Message {
    const [secret, version] = this.#version(field(req, 'name'));
    if (version.state !== 'ENABLED') {
      throw new GrpcError(status.FAILED_PRECONDITION, `Secret Version [${this.#versionName(secret, version)}] is in ${version.state} state.`);
    }
    return { name: this.#versionName(secret, version), payload: { data: version.data, data_crc32c: String(version.crc) } };
  }

  GetSecretVersion(req: Message): Message {
    const [secret, version] = this.#version(field(req, 'name'));
    return this.#versionMessage(secret, version);
  }

  ListSecretVersions(req: Message): Message {
    const secret = this.#secret(field(req, 'parent'));
    if (req.filter) throw new GrpcError(status.UNIMPLEMENTED, 'the fake does not implement filters');
    const size = Math.min(Number(req.page_size) || 25, 25000);
    const token = field(req, 'page_token');
    const start = token ? Number(Buffer.from(token, 'base64url').toString()) : 0;
    if (!Number.isInteger(start)) throw new GrpcError(status.INVALID_ARGUMENT, 'invalid page_token');
    const newestFirst = [...secret.versions].reverse();
    const page = newestFirst.slice(start, start + size);
    return {
      versions: page.map((v) => this.#versionMessage(secret, v)),
      next_page_token: start + size < newestFirst.length ? Buffer.from(String(start + size)).toString('base64url') : '',
      total_size: newestFirst.length,
    };
  }

  DisableSecretVersion(req: Message): Message {
    return this.#transition(req, 'DISABLED');
  }

  DestroySecretVersion(req: Message): Message {
    return this.#transition(req, 'DESTROYED');
  }

  #transition(req: Message, to: 'DISABLED' | 'DESTROYED'): Message {
    const [secret, version] = this.#version(field(req, 'name'));
    if (req.etag && req.etag !== version.etag) {
      throw new GrpcError(status.FAILED_PRECONDITION, `The etag provided in the request does not match the current etag of version [${this.#versionName(secret, version)}].`);
    }
    if (version.state === 'DESTROYED') {
      throw new GrpcError(status.FAILED_PRECONDITION, `Secret Version [${this.#versionName(secret, version)}] is in DESTROYED state.`);
    }
    version.state = to;
    if (to === 'DESTROYED') {
      version.data = undefined;
      version.destroyed = new Date();
    }
    version.etag = newEtag();
    return this.#versionMessage(secret, version);
  }

  /**
   * The SECRET_ROTATE message the service publishes to the secret's topics at next_rotation_time,
   * as Pub/Sub delivers it (attributes, base64 data); advances next_rotation_time by the period.
   */
  rotationNotification(id: string, at: Date = new Date()): { attributes: Record<string, string>; data: string } {
    const secret = this.#secret(`projects/${this.project}/secrets/${id}`);
    if (!secret.rotation?.next || !secret.topics.length) throw new Error(`secret ${id} has no rotation schedule and topic`);
    const message = {
      attributes: {
        eventType: 'SECRET_ROTATE',
        dataFormat: 'JSON_API_V1',
        secretId: this.#secretName(id),
        timestamp: at.toISOString().replace('Z', '000Z'),
      },
      data: Buffer.from(JSON.stringify(this.#secretJson(secret))).toString('base64'),
    };
    const { next, periodSeconds } = secret.rotation;
    secret.rotation.next = periodSeconds ? new Date(next.getTime() + periodSeconds * 1000) : undefined;
    return message;
  }

  #topics(input: unknown): string[] {
    const names = Array.isArray(input) ? input.map((t) => field(t as Message, 'name')) : [];
    if (names.length > 10) throw new GrpcError(status.INVALID_ARGUMENT, 'A secret can have at most 10 topics.');
    for (const name of names) if (!TOPIC.test(name)) throw new GrpcError(status.INVALID_ARGUMENT, `invalid topic name: ${name}`);
    return names;
  }

  #rotation(topics: string[], input: unknown): FakeSecret['rotation'] {
    const rotation = (input ?? {}) as Message;
    const next = rotation.next_rotation_time as { seconds?: string; nanos?: number } | undefined;
    const period = rotation.rotation_period as { seconds?: string; nanos?: number } | undefined;
    if (!next && !period) return undefined;
    if (!next) throw new GrpcError(status.INVALID_ARGUMENT, 'next_rotation_time must be set if rotation_period is set.');
    const at = new Date(Number(next.seconds ?? 0) * 1000 + Math.floor((next.nanos ?? 0) / 1e6));
    if (at.getTime() < Date.now() + 300_000) throw new GrpcError(status.INVALID_ARGUMENT, 'next_rotation_time must be at least 300s in the future.');
    let periodSeconds: number | undefined;
    if (period) {
      periodSeconds = Number(period.seconds ?? 0);
      if (period.nanos || periodSeconds < 3600 || periodSeconds > 3_153_600_000) {
        throw new GrpcError(status.INVALID_ARGUMENT, 'rotation_period must be whole seconds between 3600s and 3153600000s.');
      }
    }
    if (!topics.length) throw new GrpcError(status.INVALID_ARGUMENT, 'Secret.topics must be set to configure rotation.');
    return { next: at, periodSeconds };
  }

  #aliases(secret: FakeSecret, input: Record<string, string>): Record<string, number> {
    const entries = Object.entries(input);
    if (entries.length > 50) throw new GrpcError(status.INVALID_ARGUMENT, 'No more than 50 aliases can be assigned to a secret');
    const aliases: Record<string, number> = {};
    for (const [alias, value] of entries) {
      if (!ALIAS.test(alias) || /^(latest|new)$/i.test(alias)) throw new GrpcError(status.INVALID_ARGUMENT, `invalid version alias: ${alias}`);
      const n = Number(value);
      if (!secret.versions.some((v) => v.number === n)) {
        throw new GrpcError(status.INVALID_ARGUMENT, `alias ${alias} refers to version ${value}, which does not exist`);
      }
      aliases[alias] = n;
    }
    return aliases;
  }

  #annotations(input: Record<string, string>): Record<string, string> {
    let size = 0;
    for (const [key, value] of Object.entries(input)) {
      if (!ANNOTATION_KEY.test(key)) throw new GrpcError(status.INVALID_ARGUMENT, `invalid annotation key: ${key}`);
      size += Buffer.byteLength(key) + Buffer.byteLength(value);
    }
    if (size >= 16 * 1024) throw new GrpcError(status.INVALID_ARGUMENT, 'annotations must total less than 16KiB');
    return { ...input };
  }

  #project(name: string): void {
    const match = /^projects\/([^/]+)$/.exec(name);
    if (!match || (match[1] !== this.project && match[1] !== this.projectNumber)) {
      throw new GrpcError(status.PERMISSION_DENIED, `Permission denied on resource project ${match?.[1] ?? name}.`);
    }
  }

  #secret(name: string): FakeSecret {
    const match = /^(projects\/[^/]+)\/secrets\/([^/]+)$/.exec(name);
    if (!match) throw new GrpcError(status.INVALID_ARGUMENT, `invalid secret name: ${name}`);
    this.#project(match[1]!);
    const secret = this.secrets.get(match[2]!);
    if (!secret) throw new GrpcError(status.NOT_FOUND, `Secret [${this.#secretName(match[2]!)}] not found or has no versions.`);
    return secret;
  }

  #version(name: string): [FakeSecret, FakeVersion] {
    const match = /^(projects\/[^/]+\/secrets\/[^/]+)\/versions\/([^/]+)$/.exec(name);
    if (!match) throw new GrpcError(status.INVALID_ARGUMENT, `invalid secret version name: ${name}`);
    const secret = this.#secret(match[1]!);
    const ref = match[2]!;
    const n = ref === 'latest' ? secret.versions.length : /^\d+$/.test(ref) ? Number(ref) : secret.aliases[ref];
    const version = n === undefined ? undefined : secret.versions[n - 1];
    if (!version) throw new GrpcError(status.NOT_FOUND, `Secret Version [${this.#secretName(secret.id)}/versions/${ref}] not found.`);
    return [secret, version];
  }

  #secretName(id: string): string {
    return `projects/${this.projectNumber}/secrets/${id}`;
  }

  #versionName(secret: FakeSecret, version: FakeVersion): string {
    return `${this.#secretName(secret.id)}/versions/${version.number}`;
  }

  #secretMessage(secret: FakeSecret): Message {
    return {
      name: this.#secretName(secret.id),
      replication: secret.replication,
      create_time: timestamp(secret.created),
      labels: secret.labels,
      annotations: secret.annotations,
      version_aliases: Object.fromEntries(Object.entries(secret.aliases).map(([k, v]) => [k, String(v)])),
      etag: secret.etag,
      topics: secret.topics.map((name) => ({ name })),
      // rotation_period is input only: the service never returns it.
      ...(secret.rotation?.next ? { rotation: { next_rotation_time: timestamp(secret.rotation.next) } } : {}),
    };
  }

  /** The Secret in the proto3 JSON mapping, as notifications carry it in `data`. */
  #secretJson(secret: FakeSecret): Record<string, unknown> {
    return {
      name: this.#secretName(secret.id),
      createTime: secret.created.toISOString(),
      labels: secret.labels,
      topics: secret.topics.map((name) => ({ name })),
      etag: secret.etag,
      ...(secret.rotation?.next ? { rotation: { nextRotationTime: secret.rotation.next.toISOString() } } : {}),
      versionAliases: Object.fromEntries(Object.entries(secret.aliases).map(([k, v]) => [k, String(v)])),
      annotations: secret.annotations,
    };
  }

  #versionMessage(secret: FakeSecret, version: FakeVersion): Message {
    return {
      name: this.#versionName(secret, version),
      create_time: timestamp(version.created),
      ...(version.destroyed ? { destroy_time: timestamp(version.destroyed) } : {}),
      state: version.state,
      etag: version.etag,
      client_specified_payload_checksum: version.clientChecksum,
    };
  }
}
