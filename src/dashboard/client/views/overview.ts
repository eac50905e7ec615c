/** Overview: every secret the token may read, the ones needing a person first (leaked, no current, failing, drifted). */
import { api, type Page, type SecretSummary, segment } from '../api.js';
import { badge, fill, h, table, time } from '../dom.js';
import type { View } from '../main.js';

/** Most urgent first, as the API orders a secret's conditions (src/api/secret-health.ts). */
const URGENCY = ['leaked', 'no-current', 'failing', 'drifted', 'rotating', 'healthy'];
const urgency = (status: string) => (URGENCY.indexOf(status) + URGENCY.length + 1) % (URGENCY.length + 1);

/** Past this many secrets the overview stops paging by name and asks for the ones needing a person by status instead. */
const CAP = 2000;
const PAGE = 500;
const FIRST_PAGE = 100;
const ATTENTION = ['leaked', 'no-current', 'failing', 'drifted'];

const byUrgency = (a: SecretSummary, b: SecretSummary) => urgency(a.status) - urgency(b.status) || (a.name < b.name ? -1 : 1);

/**
 * The secrets to show, page by page as they arrive (`progress` after each, so the first page is
 * on screen while the rest load): every secret when there are at most CAP, else the first CAP by
 * name plus every one meeting an attention condition, so a failing secret named `zz-...` is
 * never hidden behind the cap.
 */
async function load(progress: (secrets: SecretSummary[], capped: boolean) => void): Promise<void> {
  const all = new Map<string, SecretSummary>();
  let after: string | undefined;
  do {
    // A small first page puts something on screen soon; the rest come in larger pages.
    const page = await api.get<Page<SecretSummary>>('/secrets', { limit: all.size ? PAGE : FIRST_PAGE, after });
    for (const s of page.items) all.set(s.name, s);
    after = page.next ?? undefined;
    if (after !== undefined && all.size < CAP) progress([...all.values()].sort(byUrgency), false);
  } while (after !== undefined && all.size < CAP);
  if (after !== undefined) {
    const pages = await Promise.all(ATTENTION.map((status) => api.get<Page<SecretSummary>>('/secrets', { limit: PAGE, status })));
    for (const s of pages.flatMap((page) => page.items)) all.set(s.name, s);
  }
  progress([...all.values()].sort(byUrgency), after !== undefined);
}

export function overviewView(): View {
  const filter = h('input', { type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter secrets by name', class: 'filter' });
  const counts = h('div', { class: 'counts' });
  const list = h('div', { class: 'list' });
  const more = h('p', { class: 'muted', hidden: true }, `Showing the first ${CAP} secrets by name and every one that needs attention; filter by name to find another.`);
  let secrets: SecretSummary[] = [];
  let tookMs = 0;
  let capped = false;
  /** Past the cap, a filter asks the server (a name glob) for what the loaded secrets may not hold. */
  let searched: { words: string; found: SecretSummary[] } | undefined;
  let typing: number | undefined;

  const render = () => {
    const words = filter.value.trim().toLowerCase();
    const source = capped && words && searched?.words === words ? searched.found : secrets;
    const shown = source.filter((s) => !words || s.name.toLowerCase().includes(words));
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
  filter.addEventListener('input', () => {
    render();
    window.clearTimeout(typing);
    const words = filter.value.trim().toLowerCase();
    if (!capped || !words) return;
    typing = window.setTimeout(() => {
      void api.get<Page<SecretSummary>>('/secrets', { name: `*${filter.value.trim().replace(/\*/g, '')}*`, limit: PAGE }).then((page) => {
        searched = { words, found: page.items.sort(byUrgency) };
        render();
      });
    }, 300);
  });

  return {
    title: 'Overview',
    element: h('section', { class: 'overview' }, h('div', { class: 'section-head' }, h('h1', {}, 'Secrets'), counts, filter), more, list),
    async refresh() {
      const started = performance.now();
      await load((loaded, over) => {
        secrets = loaded;
        capped = over;
        more.hidden = !over;
        render();
      });
      tookMs = performance.now() - started;
    },
    // Never more than a quarter of the server's time on this page, however many secrets there are.
    pollMs: () => Math.max(secrets.some((s) => s.status === 'rotating') ? 1000 : 5000, 3 * tookMs),
  };
}
