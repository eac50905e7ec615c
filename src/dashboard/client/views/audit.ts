/** The audit log: filtered by secret, action, actor and time, paged back; verifying its chains (admin) with an anchor. */
import { allows, api, type AuditEvent, type Me, type Page, segment } from '../api.js';
import { fill, h, notice, table } from '../dom.js';
import type { View } from '../main.js';

type Verified = { ok: true; events: number; anchor: string; since?: string } | { ok: false; events: number; seq: string; problem: string };

export function auditTable(events: AuditEvent[], withSecret = true): HTMLElement {
  const columns = ['Seq', 'At', 'Actor', 'Action', ...(withSecret ? ['Secret'] : []), 'Details'];
  return table(
    columns,
    events.map((e) => ({
      attrs: { 'data-seq': e.seq },
      cells: [
        e.seq,
        h('time', { datetime: e.at }, new Date(e.at).toLocaleString()),
        e.actor,
        h('code', {}, e.action),
        ...(withSecret ? [e.secret ? h('a', { href: `#/secrets/${segment(e.secret)}` }, e.secret) : '—'] : []),
        h('span', { class: 'data' }, e.data === null || e.data === undefined ? '' : JSON.stringify(e.data).slice(0, 200)),
      ],
    })),
    'No audit event matches.',
  );
}

/** `datetime-local` input value → ISO instant (the API's `since`/`until`), or undefined. */
const instant = (value: string) => (value ? new Date(value).toISOString() : undefined);

export function auditView(me: Me): View {
  const field = (name: string, label: string, type = 'text') => h('label', {}, label, h('input', { name, type, autocomplete: 'off' }));
  const list = h('div', { class: 'list' });
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Older events');
  const verified = h('div', { class: 'status', 'aria-live': 'polite' });
  let events: AuditEvent[] = [];
  let next: string | null = null;

  const form = h('form', { class: 'filters' }, field('secret', 'Secret'), field('action', 'Action'), field('actor', 'Actor'), field('since', 'Since', 'datetime-local'), field('until', 'Until', 'datetime-local'), h('button', { type: 'submit' }, 'Filter'));
  const query = (after?: string) => {
    const data = new FormData(form);
    const value = (k: string) => {
      const entry = data.get(k);
      return typeof entry === 'string' && entry.trim() ? entry.trim() : undefined;
    };
    return { limit: 50, secret: value('secret'), action: value('action'), actor: value('actor'), since: instant(value('since') ?? ''), until: instant(value('until') ?? ''), after };
  };
  const load = async (after?: string) => {
    const page = await api.get<Page<AuditEvent>>('/audit', query(after));
    events = after ? [...events, ...page.items] : page.items;
    next = page.next;
    fill(list, auditTable(events));
    more.hidden = next === null;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    load().catch((error: unknown) => fill(list, notice(error instanceof Error ? error.message : 'refused')));
  });
  more.addEventListener('click', () => void (next && load(next)));

  const anchor = h('input', { type: 'text', name: 'anchor', autocomplete: 'off', placeholder: 'an anchor from a previous verify (optional)', 'aria-label': 'Anchor' });
  // A large log takes minutes to walk whole; what came after an anchor takes seconds (a row removed before it needs the whole walk).
  const sinceOnly = h('input', { type: 'checkbox', id: 'verify-since' });
  const verify = h('button', { type: 'button', id: 'verify-audit' }, 'Verify the audit log');
  verify.addEventListener('click', () => {
    verify.disabled = true;
    const given = anchor.value.trim();
    api
      .act<Verified>('/audit/verify', given ? (sinceOnly.checked ? { since: given } : { anchor: given }) : {})
      .then(
        (r) =>
          fill(
            verified,
            r.ok
              ? h(
                  'div',
                  { class: 'notice notice-ok', role: 'status' },
                  r.since ? `Verified ${r.events} events after the anchor (event ${r.since}). Anchor: ` : `Verified ${r.events} events. Anchor (keep it to prove later that nothing up to here was removed): `,
                  h('code', { class: 'anchor' }, r.anchor),
                )
              : notice(`Verification failed at event ${r.seq}: ${r.problem}`),
          ),
        (error: unknown) => fill(verified, notice(error instanceof Error ? error.message : 'refused')),
      )
      .finally(() => (verify.disabled = false));
  });

  return {
    title: 'Audit',
    element: h(
      'section',
      { class: 'audit' },
      h('div', { class: 'section-head' }, h('h1', {}, 'Audit log')),
      allows(me, 'admin') ? h('div', { class: 'card verify' }, anchor, h('label', {}, sinceOnly, ' only what came after it'), verify, verified) : null,
      form,
      list,
      more,
    ),
    refresh: () => load(),
    pollMs: () => null,
  };
}
