/**
 * A batch of named statements sent as one write with one Sync (the extended query protocol's
 * pipelining, which node-postgres offers only with a Sync per query): PostgreSQL runs them in
 * order and answers them in one write too, so a batch costs each side one wake-up. After an
 * error PostgreSQL skips the rest up to the Sync; the batch fails with that error.
 *
 * A batch may hold several groups of statements with a Flush between them (the hand-out
 * journal's: one transaction's INSERT and COMMIT, then the next one's BEGIN, check and takes).
 * PostgreSQL sends a group's answers as soon as the group has run, so {@link group} resolves
 * then, without waiting for the groups after it. There is still one Sync, so an error in any
 * group skips every statement after it, the later groups' too: those groups fail with that
 * error. (A Sync per group would let a later group run after an error, but node-postgres ends
 * a query at every ReadyForQuery and every ErrorResponse, routing what follows to the next
 * query, so a Submittable can carry one Sync only.)
 *
 * A statement is described (its columns sent back as a RowDescription) only the first time it
 * runs on a connection: its columns are kept for that connection, and later runs skip the
 * Describe, so neither side writes or parses them again. A prepared statement's columns cannot
 * change while it exists (PostgreSQL refuses to run it once they would: "cached plan must not
 * change result type"), and a statement prepared again is described again.
 *
 * A Submittable (node-postgres's extension point, as pg-cursor is): the client hands it the
 * connection when it is its turn, after the previous query's ReadyForQuery, and routes the
 * answers to it.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';

/** pg's own mapping of a parameter to its text form (arrays, JSON, buffers), as its Query uses. */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (value: unknown) => unknown };

/** A named statement with its values, as the batch sends it. */
export interface Queued {
  name: string;
  text: string;
  values: readonly unknown[];
}

/** The parts of pg's Connection a batch writes with. */
interface Connection {
  parsedStatements: Record<string, string>;
  stream: { cork?(): void; uncork?(): void };
  parse(m: { name: string; text: string; types: never[] }): void;
  bind(m: { statement: string; values: readonly unknown[]; valueMapper: (value: unknown) => unknown }): void;
  describe(m: { type: 'P'; name: string }): void;
  execute(m: { portal: string }): void;
  flush(): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

interface Field {
  name: string;
  dataTypeID: number;
  format: 'text' | 'binary';
}

type Types = { getTypeParser: typeof pg.types.getTypeParser };

type Parsers = ReadonlyArray<{ name: string; parse: (text: string) => unknown }>;

/** A described statement's column parsers, for the types they were made with. */
type Described = { types: Types; parsers: Parsers };

/** Each connection's described statements, by name. */
const described = new WeakMap<Connection, Map<string, Described>>();

interface Group {
  /** Index in `queries` one past the group's last statement. */
  end: number;
  answer: Promise<unknown[][]>;
  resolve(rows: unknown[][]): void;
  reject(error: Error): void;
  settled: boolean;
}

/** What an ended batch holds instead of its statements and answers (frozen: nothing is added to an ended batch). */
const OVER = Object.freeze([]) as never[];

export class Batch {
  /** The statements, in order, for whoever counts what a process sends (bench/support/environment.ts); emptied once the batch is over. */
  queries: readonly Queued[];
  /** Each answered statement's command tag, in order (`COMMIT`, or `ROLLBACK` for a COMMIT of an aborted transaction). */
  readonly commands: string[] = [];
  /** Whether this batch prepared a statement on the connection (see {@link run}). */
  prepared = false;
  private groups: Group[];
  private results: unknown[][] = [];
  /** The answered statement's column parsers. */
  private parsers: Parsers = [];
  /** Per statement, its parsers when known without describing it; undefined when it is described. */
  private known: Array<Parsers | undefined> = [];
  /** The connection's described statements (set by submit). */
  private columns: Map<string, Described> | undefined;
  private rows: Array<Record<string, unknown>> = [];
  /** Set by the client's query() from its callback argument; called once. */
  callback: ((error: Error | undefined) => void) | undefined;
  /** run()'s promise, until it is settled. */
  private waiter: { resolve(results: unknown[][]): void; reject(error: Error): void } | undefined;

  /** @param groups statements sent in order, a Flush after each group but the last, a Sync after the last. */
  constructor(
    groups: readonly (readonly Queued[])[],
    private readonly types: Types,
  ) {
    this.queries = groups.flat();
    let end = 0;
    this.groups = groups.map((g) => {
      end += g.length;
      const group = { end, settled: false } as Group;
      group.answer = new Promise<unknown[][]>((resolve, reject) => Object.assign(group, { resolve, reject }));
      // Whoever awaits a group sees its failure; one nobody awaits fails run() anyway.
      group.answer.catch(() => {});
      return group;
    });
  }

  /**
   * Sends the batch on `client` (after what it is running) and returns each statement's rows.
   * A statement not yet prepared on the connection is prepared by the batch and counted as
   * prepared before its answer: when the batch fails, whether it was is unknown, so the caller
   * must not reuse the connection (see {@link prepared}).
   */
  run(client: pg.PoolClient): Promise<unknown[][]> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      // The callback form: createDb's wrapper of query() sees the error too (its read-only check).
      const query = client.query.bind(client) as unknown as (batch: Batch, callback: (error: Error | undefined) => void) => void;
      query(this, (error) => this.answered(error));
    });
  }

  /** The client's callback: settles run()'s promise, once. */
  private answered(error: Error | undefined): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (error) waiter?.reject(error);
    else waiter?.resolve(this.results);
  }

  /**
   * The rows of group `index`'s statements, once PostgreSQL answered them (before the groups after
   * it). Rejects with the error that skipped it. Take it before the batch ends (synchronously after
   * {@link run}): an ended batch has let go of its answers.
   * @throws Error when the batch has ended.
   */
  group(index: number): Promise<unknown[][]> {
    const group = this.groups[index];
    if (!group) throw new Error(`SQL batch: group ${index} taken after the batch ended (take it before awaiting run())`);
    return group.answer;
  }

  /** Called by the client when the connection is this batch's. */
  submit(connection: Connection): null {
    let columns = described.get(connection);
    if (!columns) described.set(connection, (columns = new Map<string, Described>()));
    this.columns = columns;
    connection.stream.cork?.();
    try {
      let sent = 0;
      for (const group of this.groups) {
        for (const q of this.queries.slice(sent, group.end)) {
          if (connection.parsedStatements[q.name] === undefined) {
            connection.parse({ name: q.name, text: q.text, types: [] });
            connection.parsedStatements[q.name] = q.text;
            columns.delete(q.name);
            this.prepared = true;
          }
          connection.bind({ statement: q.name, values: q.values, valueMapper: prepareValue });
          const known = columns.get(q.name);
          if (known?.types === this.types) this.known.push(known.parsers);
          else {
            this.known.push(undefined);
            connection.describe({ type: 'P', name: '' });
          }
          connection.execute({ portal: '' });
        }
        sent = group.end;
        if (group !== this.groups.at(-1)) connection.flush();
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    this.parsers = this.known[0] ?? [];
    return null;
  }

  handleRowDescription(message: { fields: Field[] }): void {
    this.parsers = message.fields.map((f) => ({ name: f.name, parse: this.types.getTypeParser(f.dataTypeID, f.format) as (text: string) => unknown }));
  }

  handleDataRow(message: { fields: Array<string | null> }): void {
    const row: Record<string, unknown> = {};
    this.parsers.forEach((p, i) => {
      const text = message.fields[i];
      row[p.name] = text === null || text === undefined ? null : p.parse(text);
    });
    this.rows.push(row);
  }

  handleCommandComplete(message: { text?: string }): void {
    const index = this.results.length;
    // Described: its RowDescription's columns, or none (NoData), kept for the connection.
    if (this.known[index] === undefined) this.columns?.set(this.queries[index]!.name, { types: this.types, parsers: this.parsers });
    this.results.push(this.rows);
    this.commands.push(message.text ?? '');
    this.rows = [];
    this.parsers = this.known[index + 1] ?? [];
    let start = 0;
    for (const group of this.groups) {
      if (!group.settled && group.end === this.results.length) {
        group.settled = true;
        group.resolve(this.results.slice(start, group.end));
      }
      start = group.end;
    }
  }

  handleEmptyQuery(): void {
    this.handleCommandComplete({});
  }

  handlePortalSuspended(): void {}

  handleCopyInResponse(connection: Connection): void {
    connection.sendCopyFail('a batch sends no COPY data');
  }

  handleCopyData(): void {}

  /** The client calls this for an ErrorResponse (PostgreSQL then skips to the Sync) and for a lost connection. */
  handleError(error: Error): void {
    this.finish(error);
  }

  handleReadyForQuery(): void {
    this.finish(undefined);
  }

  private finish(error: Error | undefined): void {
    // Groups not answered by now were skipped (or their connection lost).
    const failure = error ?? (this.groups.some((g) => !g.settled) ? new Error('the batch ended before its statements were answered') : undefined);
    for (const group of this.groups) {
      if (group.settled) continue;
      group.settled = true;
      group.reject(failure!);
    }
    const callback = this.callback;
    this.callback = undefined;
    callback?.(failure);
    this.drop();
  }

  /**
   * Lets go of the statements, their values and the answers once the batch is over (callers
   * hold what they still need). node-postgres's query_timeout timer closes over each query it
   * runs, and in the hand-out journal every batch's statements and answers (about 1 KB per
   * hand-out) outlived two scavenges, so were promoted to old space, though nothing retained
   * them in a heap snapshot; with query_timeout off, or with this, they did not. `commands`
   * stays: the journal reads the COMMIT's tag once its group resolved, maybe after the end. The
   * groups go too: {@link group} is taken before the end.
   */
  private drop(): void {
    // One shared empty array, not new ones: the batch itself may outlive its end by a scavenge or two, and what it holds with it.
    this.queries = this.groups = this.results = this.rows = this.known = OVER;
    this.parsers = OVER;
    this.columns = undefined;
  }
}
