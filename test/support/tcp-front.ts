/**
 * A TCP front for the PostgreSQL failover test: what a managed database's endpoint,
 * CloudNativePG's `-rw` Service or HAProxy behind Patroni's REST check is to rekey, one
 * address that the operator (here the test) repoints at the new primary. node-postgres
 * takes one host, so this front is how rekey finds the primary (docs/high-availability.md).
 * Bytes are copied as they are; nothing is parsed, except by {@link TcpFront.cutAnswerTo}.
 * {@link TcpFront.partition} swallows them instead, as a silent network partition does.
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
  /** Sessions whose bytes are dropped, both ways, for the rest of their life (see {@link partition}). */
  private readonly swallowed = new Set<Socket>();
  private silent = false;
  private swallowWaiters: Array<{ writes: number; resolve(): void }> = [];
  /** Writes (either way) dropped by a partition so far. */
  swallowedWrites = 0;

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
    if (this.silent) this.swallowed.add(client);
    const close = () => {
      this.sessions.delete(client);
      this.swallowed.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    // Per connection: 0 nothing seen, 1 `after` seen, 2 `request` passed on (its answer is dropped).
    let stage = 0;
    client.on('data', (chunk: Buffer) => {
      if (this.swallow(client)) return;
      const cut = this.cut;
      if (cut && stage < 2) {
        if (stage === 0 && chunk.includes(cut.after)) stage = 1;
        else if (stage === 1 && chunk.includes(cut.request)) stage = 2;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.swallow(client)) return;
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

  /** Whether `client`'s session is partitioned; counts the write dropped if so. */
  private swallow(client: Socket): boolean {
    if (!this.swallowed.has(client)) return false;
    this.swallowedWrites += 1;
    this.swallowWaiters = this.swallowWaiters.filter((w) => (w.writes <= this.swallowedWrites ? (w.resolve(), false) : true));
    return true;
  }

  /**
   * A silent partition: from now on every byte of the open sessions, and of those opened until
   * {@link heal}, is dropped both ways, and none is ever closed (no FIN, no RST), as when packets
   * are black-holed (a partition, a primary's host frozen or gone while its endpoint moves on).
   * Connections are still accepted (locally), but their startup is never answered.
   */
  partition(): void {
    this.silent = true;
    for (const session of this.sessions) this.swallowed.add(session);
  }

  /**
   * New connections pass again. Sessions swallowed by the partition stay swallowed: what was
   * sent on them is lost, as it is once the server behind them is gone or has been replaced.
   */
  heal(): void {
    this.silent = false;
  }

  /** Resolves once `writes` writes in all have been dropped by a partition. */
  whenSwallowed(writes: number): Promise<void> {
    if (this.swallowedWrites >= writes) return Promise.resolve();
    return new Promise((resolve) => this.swallowWaiters.push({ writes, resolve }));
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
