// Requests whose body never finishes, held open from one address: what an unauthenticated
// source can do to a server's admission slots (src/http/admission.ts) without ever failing an
// authentication.
import { connect, type Socket } from 'node:net';

/** Admission's default cap of requests awaiting authentication. */
export const CAP = 64;
/** Its default share of that cap for sources over their failed-authentication limit. */
export const OVER_LIMIT_SHARE = 8;
/** Its default failure allowance: failed authentications a source may make at once, and per minute. */
export const FAILURES = 30;
/** That allowance regained per millisecond. */
const REFILL_PER_MS = FAILURES / 60_000;

/** The most a source's failure allowance can have regained since `since` (Date.now()). */
export function refilledSince(since: number): number {
  return Math.ceil((Date.now() - since) * REFILL_PER_MS);
}

/** Resolves once a source's emptied allowance (emptied at `since` or later) has regained two failures: what a patient source waits between batches. */
export async function refilled(since: number): Promise<void> {
  const due = since + 2 / REFILL_PER_MS - Date.now();
  if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
}

/**
 * A POST of `path` from `from` to the server at `url` whose body stops after `start` (of a
 * declared 100,000 bytes); `answers` collects the status of any answer. Resolves once sent.
 */
export function slowRequest(url: string, from: string, request: { path: string; contentType: string; start: string }, answers: number[]): Promise<Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), localAddress: from }, () => {
      socket.write(`POST ${request.path} HTTP/1.1\r\nhost: rekey\r\ncontent-type: ${request.contentType}\r\ncontent-length: 100000\r\n\r\n${request.start}`, () => resolve(socket));
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (status && text.length === chunk.length) answers.push(Number(status[1]));
    });
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

/** Hangs up every socket and waits until each is closed. */
export async function hangUp(sockets: readonly Socket[]): Promise<void> {
  await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('close', resolve).destroy())));
}
