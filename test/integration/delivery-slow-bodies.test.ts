// POST /v1/token takes its admission slot (src/http/admission.ts, shared with the admin API and
// every other authenticated route) before its body is read. One source opens as many token
// requests as the server admits at once (64), sends their headers and the start of a form body,
// and stops there. None is ever refused for a bad credential, so if such a request did not count
// against its source once it ended unauthenticated, the source could hang up and open the next
// batch for ever, never over its limit: every authenticated caller of the process, here an admin
// API token, would be answered 503 busy.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApiRoutes } from '../../src/api/routes.js';
import { deliveryRoutes } from '../../src/delivery/routes.js';
import { call, tokenFor } from '../support/api.js';
import { startHarness, type Harness } from '../support/harness.js';
import { until } from '../support/poll.js';

const ATTACKER = '127.0.0.3';
/** Admission's default cap of requests awaiting authentication (src/http/admission.ts). */
const CAP = 64;
/** Its default share of that cap for sources over their failed-authentication limit. */
const OVER_LIMIT_SHARE = 8;

let h: Harness;
let admin: string;
beforeAll(async () => {
  h = await startHarness({ label: 'delivery-slow-bodies', routes: [deliveryRoutes, adminApiRoutes] });
  admin = await tokenFor(h, 'slow-bodies-reader', ['read']);
}, 60_000);
afterAll(() => h?.stop());

/** A token request whose body stops after its first bytes; `answers` collects the status of any answer. */
function slowRequest(answers: number[]): Promise<Socket> {
  const { port } = new URL(h.serving!.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port), localAddress: ATTACKER }, () => {
      socket.write('POST /v1/token HTTP/1.1\r\nhost: rekey\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100000\r\n\r\ngrant_type=', () => resolve(socket));
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

/** An authenticated admin API read: 503 while every slot is held. */
const probe = async (): Promise<number> => (await call(h, '/api/v1/openapi.json', { token: admin })).status;

describe('slow token request bodies from one source', () => {
  it('hold only the share of a source over its limit once its first batch ended unauthenticated: the admin API caller is answered 200', async () => {
    const first: number[] = [];
    const sockets = await Promise.all(Array.from({ length: CAP }, () => slowRequest(first)));
    await until(async () => (await probe()) === 503, 10_000, 'every slot held by the first batch');
    await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('close', resolve).destroy())));
    await until(async () => (await probe()) === 200, 10_000, 'the slots given back');

    const second: number[] = [];
    const held = await Promise.all(Array.from({ length: CAP }, () => slowRequest(second)));
    try {
      await until(async () => second.length >= CAP - OVER_LIMIT_SHARE || (await probe()) === 503, 10_000, 'the second batch admitted or refused');
      expect(await probe()).toBe(200);
      expect(new Set(second)).toEqual(new Set([429]));
    } finally {
      for (const socket of held) socket.destroy();
    }
  });
});
