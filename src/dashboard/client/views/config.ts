/** Config revisions, newest first, each with what it changed from the one before (section by section). */
import { api, type Page } from '../api.js';
import { fill, h, table, time } from '../dom.js';
import type { View } from '../main.js';

interface Revision {
  id: number;
  hash: string;
  appliedAt: string;
}

interface Diff {
  from: number | null;
  to: number;
  sections: Array<{ section: string; added: string[]; changed: string[]; removed: string[] }>;
}

function diffOf(diff: Diff): HTMLElement {
  const entries = diff.sections.flatMap((s) => [
    ...s.added.map((name) => ['+', s.section, name] as const),
    ...s.changed.map((name) => ['~', s.section, name] as const),
    ...s.removed.map((name) => ['-', s.section, name] as const),
  ]);
  return h(
    'div',
    { class: 'diff', 'data-diff': diff.to },
    h('h2', {}, diff.from === null ? `Revision ${diff.to} (the first)` : `Revision ${diff.to} against ${diff.from}`),
    entries.length
      ? h('ul', { class: 'diff-lines' }, ...entries.map(([mark, section, name]) => h('li', { class: `diff-${mark === '+' ? 'added' : mark === '-' ? 'removed' : 'changed'}` }, h('code', {}, `${mark} ${section}.${name}`))))
      : h('p', { class: 'empty' }, 'No change.'),
  );
}

export function configView(): View {
  const list = h('div', { class: 'list' });
  const shown = h('div', { class: 'card' });
  let selected: number | undefined;
  const select = async (id: number) => {
    selected = id;
    fill(shown, diffOf(await api.get<Diff>(`/config/revisions/${id}/diff`)));
  };
  return {
    title: 'Config',
    element: h('section', { class: 'config' }, h('div', { class: 'section-head' }, h('h1', {}, 'Config revisions')), shown, list),
    async refresh() {
      const page = await api.get<Page<Revision>>('/config/revisions', { limit: 50 });
      fill(
        list,
        table(
          ['Revision', 'Applied', 'Hash'],
          page.items.map((r) => ({
            attrs: { 'data-revision': r.id },
            cells: [h('button', { type: 'button', class: 'link', onclick: () => void select(r.id) }, `#${r.id}`), time(r.appliedAt), h('code', {}, r.hash.slice(0, 12))],
          })),
          'No config applied yet.',
        ),
      );
      if (selected === undefined && page.items[0]) await select(page.items[0].id);
    },
    pollMs: () => null,
  };
}
