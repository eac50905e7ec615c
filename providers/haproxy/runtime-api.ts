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
 * Sends one command and resolves with HAProxy's whole answer. The command may carry a
 * key: it is never part of an error this function raises.
 */
export function runtimeCommand(endpoint: RuntimeEndpoint, command: string, signal: AbortSignal, timeoutMs: number): Promise<string> {
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
