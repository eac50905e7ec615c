/** Plumbing the local fakes of HTTP APIs share (the API semantics stay in each fake). */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';

/** The whole request body as UTF-8. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Listens on a free loopback port; resolves with it. */
export function listenLoopback(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/** A loopback HTTP server standing in for a remote one (rekey, an issuer) in a test file. */
export interface StandIn {
  url: string;
  /** Closes it, its kept-alive and held connections too. */
  stop(): Promise<void>;
}

/** Starts a {@link StandIn} answering with `handler`. */
export async function standIn(handler: RequestListener): Promise<StandIn> {
  const server = createServer(handler);
  const port = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A {@link StandIn} that holds every response until the test answers it. */
export interface HoldingStandIn extends StandIn {
  /** The responses not answered yet, oldest first. */
  held: ServerResponse[];
  /** Requests received so far. */
  requests: number;
  /** Called at each request, once its response is held: the test sets it to wait for one, or to answer at once. */
  arrived: () => void;
}

/** Starts a {@link HoldingStandIn}. */
export async function holdingStandIn(): Promise<HoldingStandIn> {
  const holding = { held: [] as ServerResponse[], requests: 0, arrived: () => {} };
  const server = await standIn((_request, response) => {
    holding.requests++;
    holding.held.push(response);
    holding.arrived();
  });
  return Object.assign(holding, server);
}
