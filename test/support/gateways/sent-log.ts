// When each request of one key was sent and answered, for the last `historyMs` only: a long run
// keeps a bounded window of records (its rate x historyMs), never every request it ever sent.

/** One request: when it was sent and when its answer or error came (Date.now() ms; `end` undefined while in flight). */
export interface SentRecord {
  start: number;
  end: number | undefined;
}

export class SentLog {
  // Records in the order sent, as two arrays of doubles (NaN: in flight); the first `head` are dropped.
  #starts: number[] = [];
  #ends: number[] = [];
  #head = 0;
  /** Records dropped and compacted away: a record's index is its sequence number minus this. */
  #dropped = 0;

  constructor(private readonly historyMs: number) {}

  /** Records a request sent at `at`; returns its sequence number, for end(). */
  start(at: number): number {
    this.#starts.push(at);
    this.#ends.push(NaN);
    return this.#dropped + this.#starts.length - 1;
  }

  end(seq: number, at: number): void {
    const i = seq - this.#dropped;
    if (i >= this.#head) this.#ends[i] = at;
  }

  /** Drops answered requests sent more than historyMs before `now` (and any older than them that are answered). */
  trim(now: number): void {
    const cutoff = now - this.historyMs;
    while (this.#head < this.#starts.length && this.#starts[this.#head]! < cutoff && !Number.isNaN(this.#ends[this.#head])) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#starts.length) {
      this.#starts.splice(0, this.#head);
      this.#ends.splice(0, this.#head);
      this.#dropped += this.#head;
      this.#head = 0;
    }
  }

  /** The records kept, oldest first. */
  records(): SentRecord[] {
    const out: SentRecord[] = [];
    for (let i = this.#head; i < this.#starts.length; i++) {
      const end = this.#ends[i]!;
      out.push({ start: this.#starts[i]!, end: Number.isNaN(end) ? undefined : end });
    }
    return out;
  }
}
