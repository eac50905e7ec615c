/**
 * Building the page: elements with text content only (never HTML from strings, which the
 * Content-Security-Policy's Trusted Types requirement would refuse anyway), and formatting.
 */
type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

/** `h('a', { href: '#/x', class: 'link' }, 'text', child)`; `on<event>` attributes are listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Record<string, string | number>, ...children: Node[]): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/** Replaces the children of `parent`. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

/** A status or state badge; its class is the word (`badge badge-failing`). */
export function badge(word: string): HTMLSpanElement {
  return h('span', { class: `badge badge-${word.replace(/[^a-z_-]/g, '')}` }, word);
}

export function time(iso: string | null | undefined): HTMLElement | string {
  if (!iso) return '—';
  const date = new Date(iso);
  return h('time', { datetime: iso, title: date.toLocaleString() }, relative(date));
}

export function relative(date: Date, now = Date.now()): string {
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  const [value, unit] = abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min'] : abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  if (abs < 2) return 'now';
  return seconds < 0 ? `${value} ${unit} ago` : `in ${value} ${unit}`;
}

export function duration(ms: number | null): string {
  if (ms === null) return '—';
  return ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}

/** A table whose cells carry their column's name, so narrow screens can show each row as a card. */
export function table(columns: string[], rows: Array<{ cells: Child[]; attrs?: Attrs }>, empty = 'nothing yet'): HTMLElement {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'table',
    { class: 'grid' },
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows.map((row) => h('tr', row.attrs ?? {}, ...row.cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell))))),
  );
}

/** Shows an error where it happened; the text comes from a problem's title/detail, never raw input. */
export function notice(text: string, kind: 'error' | 'ok' = 'error'): HTMLElement {
  return h('p', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/**
 * A modal asking for `phrase` to be typed before `button` works (revoke, decommission): a
 * destructive action is never one stray click away.
 */
export function confirmTyped(options: { title: string; text: string; phrase: string; button: string; confirmed: () => void }): void {
  const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', id: 'typed-confirm' });
  const confirm = h('button', { type: 'submit', class: 'danger', disabled: true }, options.button);
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
  input.addEventListener('input', () => (confirm.disabled = input.value !== options.phrase));
  const form = h(
    'form',
    {
      onsubmit: (event: Event) => {
        event.preventDefault();
        if (input.value !== options.phrase) return;
        dialog.close();
        options.confirmed();
      },
    },
    h('h2', { id: 'confirm-title' }, options.title),
    h('p', {}, options.text),
    h('label', { for: 'typed-confirm' }, 'Type ', h('code', {}, options.phrase), ' to confirm'),
    input,
    h('div', { class: 'buttons' }, h('button', { type: 'button', class: 'quiet', onclick: () => dialog.close() }, 'Cancel'), confirm),
  );
  dialog.append(form);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}
