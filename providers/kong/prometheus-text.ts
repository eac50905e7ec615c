/**
 * A parser of the Prometheus text exposition format (version 0.0.4), which Kong's Prometheus
 * plugin serves on `/metrics`: https://prometheus.io/docs/instrumenting/exposition_formats/
 * Lines are `# HELP`/`# TYPE`/other comments, blank, or samples
 * `name{label="value",...} value [timestamp]`, where label values escape `\\`, `\"` and `\n`
 * and values may be `NaN`, `+Inf`, `-Inf`. A line that is none of these is skipped.
 */

export interface Sample {
  name: string;
  labels: Map<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/;

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sample = parseSample(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseSample(line: string): Sample | undefined {
  const name = NAME.exec(line)?.[0];
  if (!name) return undefined;
  let rest = line.slice(name.length);
  const labels = new Map<string, string>();
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    for (;;) {
      rest = rest.replace(/^[\s,]+/, '');
      if (rest.startsWith('}')) {
        rest = rest.slice(1);
        break;
      }
      const label = LABEL.exec(rest);
      if (!label) return undefined;
      rest = rest.slice(label[0].length);
      let value = '';
      let i = 0;
      for (; i < rest.length && rest[i] !== '"'; i++) {
        if (rest[i] === '\\' && i + 1 < rest.length) {
          const next = rest[++i];
          value += next === 'n' ? '\n' : next;
        } else value += rest[i];
      }
      if (i >= rest.length) return undefined;
      labels.set(label[1]!, value);
      rest = rest.slice(i + 1);
    }
  }
  const [text] = rest.trim().split(/\s+/);
  if (!text) return undefined;
  const value = text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
  if (Number.isNaN(value) && text !== 'NaN') return undefined;
  return { name, labels, value };
}
