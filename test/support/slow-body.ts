// Requests whose body never finishes, held open from one address: what an unauthenticated
// source can do to a server's admission slots (src/http/admission.ts) without ever failing an
// authentication.
import { connect, type Socket } from 'node:net';
import { expect } from 'vitest';
import { until } from './poll.js';

/** Admission's default cap of requests awaiting authentication. */
export const CAP = 64;
/** Its default share of that cap for sources not proven (none of their requests authenticated lately). */
export const UNPROVEN_SHARE = 32;
/** Its default cap of requests awaiting authentication from one source not proven. */
export const PER_SOURCE = 16;
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

/**
 * A batch from one source: `open` (one slow request, its answer's status pushed to the list)
 * CAP times at once, held until at least `refused` of them were answered or `probe` (an
 * authenticated caller) is answered 503. The caller hangs the sockets up.
 */
export async function holdBatch(open: (answers: number[]) => Promise<Socket>, refused: number, probe: () => Promise<number>): Promise<{ sockets: Socket[]; answers: number[] }> {
  const answers: number[] = [];
  const sockets = await Promise.all(Array.from({ length: CAP }, () => open(answers)));
  try {
    await until(async () => answers.length >= refused || (await probe()) === 503, 10_000, `${refused} of the batch refused`);
  } catch (error) {
    for (const socket of sockets) socket.destroy();
    throw error;
  }
  return { sockets, answers };
}

/**
 * One source's first batch: `open` (one slow request, its answer's status pushed to `answers`)
 * CAP times at once. Only its own cap (PER_SOURCE; its allowance and the share of sources over
 * it are more) is admitted, the rest refused 429, while `probe` (an authenticated caller) is
 * answered 200. Then the source hangs up (each admitted request a failure) and waits until its
 * allowance has regained two failures, as a patient source would before its next batch. Returns
 * when it hung up (Date.now()).
 */
export async function firstBatchThenPause(open: (answers: number[]) => Promise<Socket>, probe: () => Promise<number>): Promise<number> {
  const { sockets, answers } = await holdBatch(open, CAP - PER_SOURCE, probe);
  try {
    expect(await probe()).toBe(200);
    expect(answers).toEqual(Array(CAP - PER_SOURCE).fill(429));
  } catch (error) {
    for (const socket of sockets) socket.destroy();
    throw error;
  }
  const hungUp = Date.now();
  await hangUp(sockets);
  const due = hungUp + 2 / REFILL_PER_MS - Date.now();
  if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
  return hungUp;
}

/**
 * A POST of `path` from `from` to the server at `url` whose body stops after `start` (of a
 * declared 50,000 bytes: within every route's body limit, POST /v1/token's 52 KiB the least);
 * `answers` collects the status of any answer. Resolves once sent.
 */
export function slowRequest(url: string, from: string, request: { path: string; contentType: string; start: string }, answers: number[]): Promise<Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), localAddress: from }, () => {
      socket.write(`POST ${request.path} HTTP/1.1\r\nhost: rekey\r\ncontent-type: ${request.contentType}\r\ncontent-length: 50000\r\n\r\n${request.start}`, () => resolve(socket));
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
