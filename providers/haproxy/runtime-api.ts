/**
 * A minimal client for HAProxy's Runtime API (the "stats socket"), non-interactive mode:
 * connect, send one command line, read until HAProxy closes the connection.
 * Reference: HAProxy 2.6 management guide, section 9.3 "Unix Socket commands".
 */
import { connect, type Socket } from 'node:net';

export type RuntimeEndpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseRuntimeEndpoint(text: string): RuntimeEndpoint {
  if (text.startsWith('unix:')) return { kind: 'unix', path: text.slice('unix:'.length) };
  const url = new URL(text);
  return { kind: 'tcp', host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
}

/** Why a command failed before HAProxy answered: `code` is Node's errno (ECONNREFUSED, EACCES...). */
export class RuntimeTransportError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RuntimeTransportError';
  }
}

/**
 * Connections one process keeps open to one Runtime API at a time. HAProxy serves 10 per
 * stats socket by default (`stats maxconn`) and refuses a unix-socket connection beyond
 * its backlog (EAGAIN): a few rekey workers must stay well under that.
 */
const MAX_CONNECTIONS = 4;

interface Slots {
  active: number;
  waiting: (() => void)[];
}
const slotsByEndpoint = new Map<string, Slots>();

/**
 * Sends one command and resolves with HAProxy's whole answer, waiting first while this
 * process already has MAX_CONNECTIONS open to the endpoint. The command may carry a
 * key: it is never part of an error this function raises.
 */
export async function runtimeCommand(endpoint: RuntimeEndpoint, command: string, signal: AbortSignal, timeoutMs: number): Promise<string> {
  const key = endpoint.kind === 'unix' ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
  const slots = slotsByEndpoint.get(key) ?? { active: 0, waiting: [] };
  slotsByEndpoint.set(key, slots);
  await acquire(slots, signal);
  try {
    return await send(endpoint, command, signal, timeoutMs);
  } finally {
    const next = slots.waiting.shift();
    if (next) next();
    else slots.active--;
  }
}

/** Takes a slot, or waits for one to be handed over; an abort while waiting rejects. */
function acquire(slots: Slots, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new RuntimeTransportError('the call was aborted', 'ABORT_ERR'));
  if (slots.active < MAX_CONNECTIONS) {
    slots.active++;
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const handOver = () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = () => {
      slots.waiting.splice(slots.waiting.indexOf(handOver), 1);
      reject(new RuntimeTransportError('the call was aborted', 'ABORT_ERR'));
    };
    slots.waiting.push(handOver);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function send(endpoint: RuntimeEndpoint, command: string, signal: AbortSignal, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = endpoint.kind === 'unix' ? connect(endpoint.path) : connect(endpoint.port, endpoint.host);
    const chunks: Buffer[] = [];
    const fail = (message: string, code?: string, cause?: unknown) => {
      cleanup();
      socket.destroy();
      reject(new RuntimeTransportError(message, code, { cause }));
    };
    const onAbort = () => fail('the call was aborted', 'ABORT_ERR');
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs}ms`, 'ETIMEDOUT'), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', (error: NodeJS.ErrnoException) => fail(`Runtime API ${error.code ?? 'error'}`, error.code));
    socket.once('close', () => {
      cleanup();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}
