/**
 * A local receiver of rekey's notifications (127.0.0.1:0). Every POST is recorded with the
 * status it was answered. Paths under /hooks/ are webhook destinations, each checked with the
 * `standardwebhooks` reference library (independent of rekey's signing code); /slack takes a
 * Slack-style `{ text }` body. It can answer a status to the next N requests of a path.
 */
import { createServer, type Server } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { listenLoopback, readBody } from './fake-http.js';

export interface NoticeDelivery {
  path: string;
  /** `webhook-id` (webhook destinations). */
  id: string;
  signatureValid: boolean;
  /** What the receiver answered. */
  status: number;
  body: string;
  headers: Record<string, string>;
  /** When it arrived (ms since the epoch). */
  at: number;
}

export interface NoticeReceiver {
  base: string;
  deliveries: NoticeDelivery[];
  /** Deliveries of `path` the receiver accepted (2xx). */
  accepted(path: string): NoticeDelivery[];
  /** Answer `status` to the next `times` requests of `path`, with `Retry-After: <retryAfter>` when given. */
  failNext(path: string, status: number, times: number, retryAfter?: string): void;
  close(): Promise<void>;
}

export async function startNoticeReceiver(secret: string): Promise<NoticeReceiver> {
  const verifier = new Webhook(secret);
  const deliveries: NoticeDelivery[] = [];
  const faults = new Map<string, { status: number; times: number; retryAfter?: string }>();
  const server: Server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const path = req.url ?? '';
      const header = (name: string) => String(req.headers[name] ?? '');
      let signatureValid = true;
      try {
        verifier.verify(body, { 'webhook-id': header('webhook-id'), 'webhook-timestamp': header('webhook-timestamp'), 'webhook-signature': header('webhook-signature') });
      } catch {
        signatureValid = false;
      }
      const fault = faults.get(path);
      let status = path.startsWith('/hooks/') && !signatureValid ? 401 : 204;
      let retryAfter: string | undefined;
      if (status === 204 && fault && fault.times > 0) {
        fault.times -= 1;
        status = fault.status;
        retryAfter = fault.retryAfter;
      }
      deliveries.push({ path, id: header('webhook-id'), signatureValid, status, body, headers: { ...(req.headers as Record<string, string>) }, at: Date.now() });
      res.writeHead(status, retryAfter === undefined ? {} : { 'retry-after': retryAfter }).end();
    });
  });
  const port = await listenLoopback(server);
  return {
    base: `http://127.0.0.1:${port}`,
    deliveries,
    accepted: (path) => deliveries.filter((d) => d.path === path && d.status < 300),
    failNext: (path, status, times, retryAfter) => faults.set(path, { status, times, retryAfter }),
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
