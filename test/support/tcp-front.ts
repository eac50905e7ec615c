/**
 * A TCP front for the PostgreSQL failover test: what a managed database's endpoint,
 * CloudNativePG's `-rw` Service or HAProxy behind Patroni's REST check is to rekey, one
 * address that the operator (here the test) repoints at the new primary. node-postgres
 * takes one host, so this front is how rekey finds the primary (docs/high-availability.md).
 * Bytes are copied as they are; nothing is parsed, except by {@link TcpFront.cutAnswerTo}.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** Which request's answer to drop: `after` seen on a connection, then `request` (both in what the client sent). */
export interface AnswerCut {
  after: string;
  request: string;
  /** Whether the answer was dropped and the connection cut. */
  fired: boolean;
}

export class TcpFront {
  private readonly sessions = new Set<Socket>();
  private cut: AnswerCut | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private target: number,
  ) {}

  static async listen(target: number): Promise<TcpFront> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const front = new TcpFront(server, (server.address() as { port: number }).port, target);
    server.on('connection', (client) => front.accept(client));
    return front;
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    this.sessions.add(client);
    const close = () => {
      this.sessions.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    // Per connection: 0 nothing seen, 1 `after` seen, 2 `request` passed on (its answer is dropped).
    let stage = 0;
    client.on('data', (chunk: Buffer) => {
      const cut = this.cut;
      if (cut && stage < 2) {
        if (stage === 0 && chunk.includes(cut.after)) stage = 1;
        else if (stage === 1 && chunk.includes(cut.request)) stage = 2;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (stage === 2 && this.cut) {
        // The server has answered the request (a COMMIT: it has committed); the client never hears it.
        this.cut.fired = true;
        this.cut = undefined;
        close();
        return;
      }
      client.write(chunk);
    });
  }

  /**
   * Once: on the first connection that sends `after` and then, in a later write, `request`, the
   * server's answer to that write is dropped and the connection cut, as when a failover or a
   * network fault ends a connection after the server committed but before the client heard it.
   * Strings are matched in the raw bytes, so name something the client's messages spell out
   * (for node-postgres's named statements: the statement's name, as `\0name\0`).
   */
  cutAnswerTo(after: string, request: string): AnswerCut {
    this.cut = { after, request, fired: false };
    return this.cut;
  }

  /**
   * New connections go to `target` from now on. `cut` also ends the open sessions (HAProxy's
   * `on-marked-down shutdown-sessions`); without it they stay with the old server, as they
   * do through a Kubernetes Service whose endpoint changed.
   */
  repoint(target: number, { cut }: { cut: boolean }): void {
    this.target = target;
    if (cut) for (const session of this.sessions) session.destroy();
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
