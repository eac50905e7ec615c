/** Overview: every secret the token may read, the ones needing a person first (leaked, no current, failing, drifted). */
import { api, type Page, type SecretSummary, segment } from '../api.js';
import { badge, fill, h, table, time } from '../dom.js';
import type { View } from '../main.js';

/** Most urgent first, as the API orders a secret's conditions (src/api/secret-health.ts). */
const URGENCY = ['leaked', 'no-current', 'failing', 'drifted', 'rotating', 'healthy'];
const urgency = (status: string) => (URGENCY.indexOf(status) + URGENCY.length + 1) % (URGENCY.length + 1);

/** Every page of /secrets (the API pages by name; the overview needs them all to sort by urgency). */
async function allSecrets(): Promise<SecretSummary[]> {
  const all: SecretSummary[] = [];
  let after: string | undefined;
  do {
    const page = await api.get<Page<SecretSummary>>('/secrets', { limit: 500, after });
    all.push(...page.items);
    after = page.next ?? undefined;
  } while (after !== undefined);
  return all.sort((a, b) => urgency(a.status) - urgency(b.status) || (a.name < b.name ? -1 : 1));
}

export function overviewView(): View {
  const filter = h('input', { type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter secrets by name', class: 'filter' });
  const counts = h('div', { class: 'counts' });
  const list = h('div', { class: 'list' });
  let secrets: SecretSummary[] = [];

  const render = () => {
    const words = filter.value.trim().toLowerCase();
    const shown = secrets.filter((s) => !words || s.name.toLowerCase().includes(words));
    const tally = new Map<string, number>();
    for (const s of secrets) tally.set(s.status, (tally.get(s.status) ?? 0) + 1);
    fill(counts, ...URGENCY.filter((status) => tally.has(status)).map((status) => h('span', { class: 'count' }, badge(status), ` ${tally.get(status)}`)));
    fill(
      list,
      table(
        ['Secret', 'Status', 'Current', 'Last rotated', 'Next rotation', 'Last run'],
        shown.map((s) => ({
          attrs: { 'data-secret': s.name, 'data-status': s.status },
          cells: [
            h('a', { href: `#/secrets/${segment(s.name)}` }, s.name),
            h('span', { class: 'badges' }, ...(s.conditions.length ? s.conditions : ['healthy']).map(badge), s.removed ? badge('removed') : null),
            s.currentVersion === null ? '—' : `v${s.currentVersion}`,
            time(s.lastRotatedAt),
            time(s.nextRotation),
            s.lastRun ? h('span', {}, badge(s.lastRun.status), s.lastRun.error ? h('span', { class: 'error-text' }, ` ${s.lastRun.error}`) : null) : '—',
          ],
        })),
        words ? 'No secret matches the filter.' : 'No secrets yet: `rekey apply -f rekey.yaml` declares them.',
      ),
    );
  };
  filter.addEventListener('input', render);

  return {
    title: 'Overview',
    element: h('section', { class: 'overview' }, h('div', { class: 'section-head' }, h('h1', {}, 'Secrets'), counts, filter), list),
    async refresh() {
      secrets = await allSecrets();
      render();
    },
    pollMs: () => (secrets.some((s) => s.status === 'rotating') ? 1000 : 5000),
  };
}
