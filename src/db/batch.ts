/**
 * A batch of named statements sent as one write with one Sync (the extended query protocol's
 * pipelining, which node-postgres offers only with a Sync per query): PostgreSQL runs them in
 * order and answers them in one write too, so a batch costs each side one wake-up. After an
 * error PostgreSQL skips the rest up to the Sync; the batch fails with that error.
 * A Submittable (node-postgres's extension point, as pg-cursor is): the client hands it the
 * connection when it is its turn and routes the answers to it.
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
  sync(): void;
  sendCopyFail(message: string): void;
}

interface Field {
  name: string;
  dataTypeID: number;
  format: 'text' | 'binary';
}

type Types = { getTypeParser: typeof pg.types.getTypeParser };

export class Batch {
  /** The statements, for whoever counts what a process sends (bench/support/environment.ts). */
  readonly queries: readonly Queued[];
  /** Whether this batch prepared a statement on the connection (see {@link run}). */
  prepared = false;
  private readonly results: unknown[][] = [];
  private parsers: Array<{ name: string; parse: (text: string) => unknown }> = [];
  private rows: Array<Record<string, unknown>> = [];
  /** Set by the client's query() from its callback argument; called once. */
  callback: ((error: Error | undefined) => void) | undefined;

  constructor(queries: readonly Queued[], private readonly types: Types) {
    this.queries = queries;
  }

  /**
   * Sends the batch on `client` (after what it is running) and returns each statement's rows.
   * A statement not yet prepared on the connection is prepared by the batch and counted as
   * prepared before its answer: when the batch fails, whether it was is unknown, so the caller
   * must not reuse the connection (see {@link prepared}).
   */
  run(client: pg.PoolClient): Promise<unknown[][]> {
    return new Promise((resolve, reject) => {
      // The callback form: createDb's wrapper of query() sees the error too (its read-only check).
      const query = client.query.bind(client) as unknown as (batch: Batch, callback: (error: Error | undefined) => void) => void;
      query(this, (error) => (error ? reject(error) : resolve(this.results)));
    });
  }

  /** Called by the client when the connection is this batch's. */
  submit(connection: Connection): null {
    connection.stream.cork?.();
    try {
      for (const q of this.queries) {
        if (connection.parsedStatements[q.name] === undefined) {
          connection.parse({ name: q.name, text: q.text, types: [] });
          connection.parsedStatements[q.name] = q.text;
          this.prepared = true;
        }
        connection.bind({ statement: q.name, values: q.values, valueMapper: prepareValue });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '' });
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
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

  handleCommandComplete(): void {
    this.results.push(this.rows);
    this.rows = [];
    this.parsers = [];
  }

  handleEmptyQuery(): void {
    this.handleCommandComplete();
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
    const callback = this.callback;
    this.callback = undefined;
    callback?.(error);
  }
}
