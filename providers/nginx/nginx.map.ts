/**
 * The map file format. Each key rekey manages is one line
 *   "~^<key, regex-escaped>$" "<consumer>";
 * an anchored, case-sensitive regular expression, because nginx compares plain map
 * strings ignoring case (which would accept `ABC` for the key `abc`). Every other line
 * (comments, entries someone else wrote) is kept verbatim, in place.
 */

export interface MapEntry {
  key: string;
  consumer: string;
}

type Line = { kind: 'entry'; entry: MapEntry } | { kind: 'other'; text: string };

const ENTRY = /^\s*"~\^((?:[^"\\]|\\.)+)\$"\s+"([^"]*)"\s*;\s*$/;
export const HEADER = '# Managed by rekey (nginx target): one line per API key. Lines rekey did not write are kept as they are.';

export class MapFile {
  readonly #lines: Line[];

  private constructor(lines: Line[]) {
    this.#lines = lines;
  }

  static parse(text: string): MapFile {
    const raw = text === '' ? [] : text.replace(/\n$/, '').split('\n');
    return new MapFile(
      raw.map((line): Line => {
        const match = ENTRY.exec(line);
        return match ? { kind: 'entry', entry: { key: match[1]!.replace(/\\(.)/g, '$1'), consumer: match[2]! } } : { kind: 'other', text: line };
      }),
    );
  }

  entries(): MapEntry[] {
    return this.#lines.flatMap((line) => (line.kind === 'entry' ? [line.entry] : []));
  }

  /** Adds key -> consumer, or updates the consumer of an existing key (all its lines). */
  upsert(entry: MapEntry): MapFile {
    const exists = this.#lines.some((line) => line.kind === 'entry' && line.entry.key === entry.key);
    const lines = this.#lines.map((line) => (line.kind === 'entry' && line.entry.key === entry.key ? { kind: 'entry' as const, entry } : line));
    return new MapFile(exists ? lines : [...lines, { kind: 'entry', entry }]);
  }

  /** Drops every entry for which `doomed` is true. */
  remove(doomed: (entry: MapEntry) => boolean): MapFile {
    return new MapFile(this.#lines.filter((line) => line.kind !== 'entry' || !doomed(line.entry)));
  }

  render(): string {
    const lines = this.#lines.map((line) => (line.kind === 'entry' ? renderEntry(line.entry) : line.text));
    if (!lines.includes(HEADER)) lines.unshift(HEADER);
    return `${lines.join('\n')}\n`;
  }
}

function renderEntry(entry: MapEntry): string {
  // Only `.` and `+` of the key charset mean something in a regex; nginx keeps `\.` as is.
  return `"~^${entry.key.replace(/[.+]/g, '\\$&')}$" "${entry.consumer}";`;
}
