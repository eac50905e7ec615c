/** The audit log: filtered by secret, action, actor and time, paged back; verifying its chains (admin) with an anchor. */
import { allows, api, ApiError, type AuditEvent, type Me, type Page, segment } from '../api.js';
import { fill, h, notice, table } from '../dom.js';
import type { View } from '../main.js';

/** An audit verification as the API answers it (POST/GET /audit/verifications): the walk runs on the server, in the background. */
interface Verification {
  id: string;
  state: 'running' | 'passed' | 'failed' | 'error' | 'stopped' | 'abandoned' | 'tampered' | 'unreadable';
  startedBy: string | null;
  startedAt: string | null;
  progress: { events: number; seq: string; upper: string; share: number; perSecond: number; secondsLeft: number | null } | null;
  result: { ok: true; events: number; anchor: string; since?: string } | { ok: false; events: number; seq: string; problem: string } | null;
  error: string | null;
  /** Each time a server took the walk up again where it stopped (`after`: the last event it had checked). */
  resumed: Array<{ at: string | null; after: string | null }>;
}

/** How often a running verification is asked how far it has come. */
const FOLLOW_EVERY_MS = 1000;
/** Times the server takes a stopped or abandoned verification up again (MAX_RESUMES in src/api/verifications.ts). */
const MAX_RESUMES = 3;

/** A stopped or abandoned verification a server will take up again: followed until it is. */
const willResume = (v: Verification) => (v.state === 'stopped' || v.state === 'abandoned') && v.resumed.length < MAX_RESUMES;

const count = (n: number) => n.toLocaleString();

/** What a verification's state says, as the status card shows it. */
function verificationStatus(v: Verification): HTMLElement {
  const r = v.result;
  if (v.state === 'running') {
    const p = v.progress;
    const left = p?.secondsLeft == null ? '' : `, about ${Math.ceil(p.secondsLeft)} s left`;
    return h(
      'div',
      { class: 'notice notice-ok', role: 'status' },
      h('progress', { max: '1', value: String(p?.share ?? 0) }),
      p ? ` Verifying: ${count(p.events)} events checked, up to event ${p.seq} of ${p.upper} (${Math.floor(p.share * 100)}%), ${count(Math.round(p.perSecond))}/s${left}` : ' Verifying: starting',
    );
  }
  if (v.state === 'passed' && r?.ok) {
    return h(
      'div',
      { class: 'notice notice-ok', role: 'status' },
      r.since ? `Verified ${r.events} events after the anchor (event ${r.since}). Anchor: ` : `Verified ${r.events} events. Anchor (keep it to prove later that nothing up to here was removed): `,
      h('code', { class: 'anchor' }, r.anchor),
    );
  }
  if (v.state === 'failed' && r && !r.ok) return notice(`Verification failed at event ${r.seq}: ${r.problem}`);
  if (v.state === 'error') return notice(`The verification could not finish: ${v.error ?? 'unknown error'}. Run it again.`);
  const why = v.state === 'stopped' ? 'its server shut down' : 'its server stopped reporting (it restarted or died)';
  if (willResume(v)) return h('div', { class: 'notice notice-ok', role: 'status' }, `The verification paused: ${why}. Another server takes it up where it stopped within seconds.`);
  if (v.state === 'stopped' || v.state === 'abandoned') return notice(`The verification stopped (${why}) after it had been taken up again ${v.resumed.length} times. Run it again.`);
  if (v.state === 'unreadable') return notice('This verification was recorded by another release of rekey (an upgrade under way): this server cannot read it. Run it again once the upgrade is done.');
  return notice('The record of this verification in Redis was altered (its seal does not verify): nothing of it can be shown. Run it again, and find out who can write to Redis.');
}

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
  const failed = (error: unknown) => {
    verify.disabled = false;
    fill(verified, notice(error instanceof Error ? error.message : 'refused'));
  };
  // Shows `v`, and while it runs asks again every FOLLOW_EVERY_MS, as long as this view is on screen
  // and nothing else was shown since (one loop: a click and the view's first load may both follow).
  let shown = 0;
  const follow = (v: Verification): void => {
    const mine = ++shown;
    const by = v.startedBy && v.startedAt ? h('p', { class: 'muted' }, `Started by ${v.startedBy} at ${new Date(v.startedAt).toLocaleString()}`) : null;
    const taken = v.resumed.at(-1);
    const resumed = taken ? h('p', { class: 'muted' }, `Taken up again by another server ${taken.after ? `after event ${taken.after}` : 'from the start'} (${v.resumed.length} of ${MAX_RESUMES} times)`) : null;
    fill(verified, verificationStatus(v), by, resumed);
    const going = v.state === 'running' || willResume(v);
    verify.disabled = going;
    if (!going) return;
    window.setTimeout(() => {
      if (verified.isConnected && mine === shown) api.get<Verification>(`/audit/verifications/${v.id}`).then(follow, failed);
    }, FOLLOW_EVERY_MS);
  };
  // The latest verification, whoever started it: one running is followed.
  const latest = () => api.get<{ items: Verification[] }>('/audit/verifications').then(({ items }) => items[0] && follow(items[0]));
  verify.addEventListener('click', () => {
    verify.disabled = true;
    const given = anchor.value.trim();
    api.act<Verification>('/audit/verifications', given ? (sinceOnly.checked ? { since: given } : { anchor: given }) : {}).then(follow, (error: unknown) =>
      // Another is running (another person's, another tab's): follow that one.
      error instanceof ApiError && error.code === 'REKEY_API_CONFLICT' ? latest().catch(failed) : failed(error),
    );
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
    refresh: () => Promise.all([load(), allows(me, 'admin') ? latest() : undefined]).then(() => undefined),
    pollMs: () => null,
  };
}
