/** Leak reports, newest first: source, what they matched, the outcome and the time from report to blocked. */
import { api, type Leak, type Page, segment } from '../api.js';
import { badge, duration, fill, h, table, time } from '../dom.js';
import type { View } from '../main.js';

export function leaksView(): View {
  const list = h('div', { class: 'list' });
  return {
    title: 'Leaks',
    element: h('section', { class: 'leaks' }, h('div', { class: 'section-head' }, h('h1', {}, 'Leak reports')), list),
    async refresh() {
      const page = await api.get<Page<Leak>>('/leaks', { limit: 100 });
      fill(
        list,
        table(
          ['Received', 'Source', 'Secret', 'Fingerprint', 'Outcome', 'Blocked', 'Report → blocked'],
          page.items.map((l) => ({
            attrs: { 'data-leak': l.id },
            cells: [
              time(l.receivedAt),
              l.source,
              l.secret ? h('a', { href: `#/secrets/${segment(l.secret)}` }, l.version === null ? l.secret : `${l.secret} v${l.version}`) : h('span', { class: 'muted' }, 'unknown key'),
              h('code', {}, l.fingerprint),
              badge(l.outcome),
              time(l.blockedAt),
              duration(l.leakToBlockedMs),
            ],
          })),
          'No leak reported.',
        ),
      );
    },
    pollMs: () => 3000,
  };
}
