/**
 * A local webhook receiver for tests (127.0.0.1:0). It verifies every request with the
 * `standardwebhooks` reference library (https://www.standardwebhooks.com/), independent of
 * rekey's signing code, deduplicates by webhook-id as the spec recommends receivers do, keeps
 * which versions it holds, and serves that as the `state` endpoint (GET /state, signed too).
 * It can fail on demand to exercise retries.
 */
import { createServer, type Server } from 'node:http';
import { Webhook } from 'standardwebhooks';

export interface Delivery {
  id: string;
  timestamp: number;
  signatureValid: boolean;
  /** Seconds since the receiver started, for backoff checks. */
  at: number;
  body: string;
}

export interface Receiver {
  url: string;
  stateUrl: string;
  deliveries: Delivery[];
  /** versionId -> data of its `deployed` event, until `retired`. */
  held: Map<string, Record<string, unknown>>;
  /** Processed message ids (dedup). */
  processed: Set<string>;
  /** Answer this status to the next `times` POSTs (Infinity: until changed). */
  failNext(status: number, times: number, retryAfter?: number): void;
  close(): Promise<void>;
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const verifier = new Webhook(secret);
  const deliveries: Delivery[] = [];
  const held = new Map<string, Record<string, unknown>>();
  const processed = new Set<string>();
  const started = performance.now();
  const fault = { status: 0, times: 0, retryAfter: undefined as number | undefined };

  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      let valid = true;
      try {
        verifier.verify(body, headers);
      } catch {
        valid = false;
      }
      if (req.method === 'GET' && req.url === '/state') {
        if (!valid) return void res.writeHead(401).end();
        const deployed = [...held.values()].map((d) => ({ versionId: d.versionId, fingerprint: d.fingerprint, consumer: d.consumer }));
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ deployed }));
      }
      deliveries.push({ id: headers['webhook-id'], timestamp: Number(headers['webhook-timestamp']), signatureValid: valid, at: (performance.now() - started) / 1000, body });
      if (!valid) return void res.writeHead(401).end();
      if (fault.times > 0) {
        fault.times -= 1;
        return void res.writeHead(fault.status, fault.retryAfter ? { 'retry-after': String(fault.retryAfter) } : {}).end();
      }
      // Deduplicate by webhook-id: a redelivery is acknowledged and not processed again.
      if (!processed.has(headers['webhook-id'])) {
        processed.add(headers['webhook-id']);
        const event = JSON.parse(body) as { type: string; data: Record<string, unknown> };
        if (event.type === 'rekey.version.deployed') held.set(String(event.data.versionId), event.data);
        if (event.type === 'rekey.version.retired') held.delete(String(event.data.versionId));
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks/rekey`,
    stateUrl: `http://127.0.0.1:${port}/state`,
    deliveries,
    held,
    processed,
    failNext(status, times, retryAfter) {
      Object.assign(fault, { status, times, retryAfter });
    },
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
