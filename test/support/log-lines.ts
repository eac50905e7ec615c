/**
 * Checks on captured log lines (pino's JSON, one object per line).
 */

/**
 * The fields a log line holds twice at its top level. pino writes a child logger's bindings
 * and a call's own fields side by side without merging them, so a field bound by a parent and
 * bound (or passed) again appears twice: a line most JSON readers then reduce to one of them.
 */
export function repeatedFields(line: string): string[] {
  const seen = new Set<string>();
  const repeated: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let end = i + 1;
      while (end < line.length && line[end] !== '"') end += line[end] === '\\' ? 2 : 1;
      if (depth === 1 && line[end + 1] === ':') {
        const key = line.slice(i + 1, end);
        if (seen.has(key)) repeated.push(key);
        seen.add(key);
      }
      i = end;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return repeated;
}

/** `field in "message"` for every line of `lines` that holds a field twice (each pair once). */
export function linesWithRepeatedFields(lines: readonly string[]): string[] {
  const found = new Set<string>();
  for (const line of lines) {
    for (const field of repeatedFields(line)) found.add(`${field} in "${/"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? '?'}"`);
  }
  return [...found];
}
