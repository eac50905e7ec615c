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
  /**
   * Holds the next POST of this event type unanswered and unprocessed (a delivery stuck in a
   * proxy or a slow worker of the receiver); the sender times out. Resolves `arrived` once it has
   * come in; `release()` then processes it, late, as a receiver's queue would.
   */
  holdNext(type: 'deployed' | 'retired'): { arrived: Promise<void>; release(): void };
  close(): Promise<void>;
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const verifier = new Webhook(secret);
  const deliveries: Delivery[] = [];
  const held = new Map<string, Record<string, unknown>>();
  const processed = new Set<string>();
  const started = performance.now();
  const fault = { status: 0, times: 0, retryAfter: undefined as number | undefined };
  let hold: { type: string; arrived: () => void; gate: Promise<void> } | undefined;

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
      const handle = () => {
        // Deduplicate by webhook-id: a redelivery is acknowledged and not processed again.
        if (!processed.has(headers['webhook-id'])) {
          processed.add(headers['webhook-id']);
          const event = JSON.parse(body) as { type: string; data: Record<string, unknown> };
          if (event.type === 'rekey.version.deployed') held.set(String(event.data.versionId), event.data);
          if (event.type === 'rekey.version.retired') held.delete(String(event.data.versionId));
        }
        if (!res.destroyed) res.writeHead(204).end();
      };
      const type = (JSON.parse(body) as { type: string }).type;
      if (hold && type === `rekey.version.${hold.type}`) {
        const { arrived, gate } = hold;
        hold = undefined;
        arrived();
        return void gate.then(handle);
      }
      handle();
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
    holdNext(type) {
      let release!: () => void;
      let arrived!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const came = new Promise<void>((resolve) => (arrived = resolve));
      hold = { type, arrived, gate };
      return { arrived: came, release };
    },
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
