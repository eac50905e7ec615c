/**
 * One secret: its version timeline, versions with per-target delivery, per-target sync, runs
 * with their steps (a running one followed live, every second), and its audit events. Actions:
 * check drift (and repair), rotate now, revoke a version after typing its name (`pay-api v3`), and, for a secret removed
 * from rekey.yaml, decommission after typing the secret's name.
 */
import { allows, api, ApiError, type AuditEvent, type Me, type Page, type Run, type SecretDetail, segment, type Version } from '../api.js';
import { badge, confirmTyped, fill, h, notice, table, time } from '../dom.js';
import type { View } from '../main.js';
import { auditTable } from './audit.js';
import { timeline } from './timeline.js';

const ROTATION_STEPS = ['issue', 'deploy', 'verify', 'promote', 'finalize', 'done'];
const REVOCABLE = new Set(['pending', 'current', 'previous', 'retired', 'compromised']);

function steps(run: Run): HTMLElement {
  if (run.kind !== 'rotation') return h('span', {}, run.step);
  const reached = ROTATION_STEPS.indexOf(run.step);
  const shown = run.step === 'rollback' ? [...ROTATION_STEPS.slice(0, -1), 'rollback'] : ROTATION_STEPS;
  return h(
    'ol',
    { class: 'steps', 'aria-label': `at step ${run.step}` },
    ...shown.map((step, i) => h('li', { class: step === run.step ? (run.status === 'running' ? 'step-now' : `step-${run.status}`) : i < reached || run.status === 'succeeded' ? 'step-done' : 'step-todo' }, step)),
  );
}

function runDetail(run: Run, events: AuditEvent[] | undefined): HTMLElement {
  return h(
    'div',
    { class: 'run-detail', 'data-run': run.id },
    steps(run),
    run.error ? notice(run.error) : null,
    events ? h('ol', { class: 'events' }, ...events.map((e) => h('li', {}, time(e.at), ' ', h('code', {}, e.action), e.data && typeof e.data === 'object' && 'error' in e.data ? h('span', { class: 'error-text' }, ` ${String(e.data.error)}`) : null))) : null,
  );
}

export function secretView(me: Me, name: string): View {
  const path = `/secrets/${segment(name)}`;
  const body = h('div', { class: 'detail-body' });
  const message = h('div', { class: 'status', 'aria-live': 'polite' });
  const expanded = new Set<string>();
  let detail: SecretDetail | undefined;
  let runs: Run[] = [];

  const act = (button: HTMLButtonElement, what: () => Promise<string>) => {
    button.disabled = true;
    what().then(
      (text) => fill(message, notice(text, 'ok')),
      (error: unknown) => fill(message, notice(error instanceof Error ? error.message : 'refused')),
    ).finally(() => {
      button.disabled = false;
      void view.refresh();
    });
  };

  const rotate = h('button', { type: 'button', id: 'rotate-now' }, 'Rotate now');
  rotate.addEventListener('click', () =>
    act(rotate, async () => {
      const answer = await api.act<{ runId: string; status: string }>(`${path}/rotate`);
      expanded.add(answer.runId);
      return answer.status === 'joined' ? `A rotation was already running: following run ${answer.runId.slice(0, 8)}.` : `Rotation queued: run ${answer.runId.slice(0, 8)}.`;
    }),
  );

  type StoreFinding = { provider: string; found: string | null; storeCurrent: { storeVersionId: string; number: number | null; state: string | null } | null; rekeyCurrent: number | null; repaired: boolean; error: string | null };
  type DriftReport = { inSync: boolean; targets: Array<{ target: string; missing: number[]; unwanted: number[]; redeployed: number[]; retiring: number[]; error: string | null }>; store: StoreFinding | null };
  /** What the store check found, when it is not in sync: `store mem: current stage on v8 (failed), given back to v7`. */
  const storeDrift = (s: StoreFinding | null): string[] => {
    if (!s || (s.found === 'in-sync' && !s.error)) return [];
    if (!s.found) return [`store ${s.provider}: ${s.error ?? 'check failed'}`];
    const held = s.storeCurrent;
    const on = !held ? 'on no version' : held.number === null ? `on a version rekey does not know (${held.storeVersionId})` : `on v${held.number} (${held.state ?? '?'})`;
    const done = s.repaired ? `given back to v${s.rekeyCurrent}` : s.error ? `not repaired: ${s.error}` : s.rekeyCurrent === null ? 'rekey has no current version' : `rekey current is v${s.rekeyCurrent}`;
    return [`store ${s.provider}: current stage ${on}, ${done}`];
  };
  const drift = h('button', { type: 'button', class: 'quiet', id: 'check-drift' }, 'Check drift');
  drift.addEventListener('click', () =>
    act(drift, async () => {
      const report = await api.act<DriftReport>(`${path}/drift-check`, { repair: true });
      const list = (ns: number[]) => ns.map((n) => `v${n}`).join(', ');
      const found = report.targets.flatMap((t) => [
        ...(t.error ? [`${t.target}: ${t.error}`] : []),
        ...(t.redeployed.length ? [`${t.target}: deployed ${list(t.redeployed)} again`] : t.missing.length ? [`${t.target}: missing ${list(t.missing)}`] : []),
        ...(t.retiring.length ? [`${t.target}: retiring ${list(t.retiring)}`] : t.unwanted.length ? [`${t.target}: still holds ${list(t.unwanted)}`] : []),
      ]);
      return report.inSync ? 'Every target holds exactly the keys it should, and the store serves the current version.' : `Drift found: ${[...found, ...storeDrift(report.store)].join('; ')}.`;
    }),
  );

  const revoke = (v: Version) =>
    confirmTyped({
      title: `Revoke ${name} v${v.number}?`,
      text: v.state === 'current' ? `v${v.number} is current: it is taken down as a leaked key, and replaced as the secret's onLeak policy says.` : `v${v.number} is removed from every target and revoked where it was issued.`,
      phrase: `${name} v${v.number}`,
      button: `Revoke v${v.number}`,
      confirmed: () =>
        act(rotate, async () => {
          const answer = await api.act<{ outcome: string }>(`${path}/versions/${v.number}/revoke`);
          return `v${v.number}: ${answer.outcome}.`;
        }),
    });

  const decommission = h('button', { type: 'button', class: 'danger', id: 'decommission' }, 'Decommission…');
  decommission.addEventListener('click', () =>
    confirmTyped({
      title: `Decommission ${name}?`,
      text: `${name} is no longer in rekey.yaml. Every live key of it is retired from its targets and revoked where it was issued; its history is kept.`,
      phrase: name,
      button: 'Decommission',
      confirmed: () =>
        act(decommission, async () => {
          const answer = await api.act<{ versions: number[] }>(`${path}/decommission`);
          return answer.versions.length ? `Decommissioning: ${answer.versions.map((n) => `v${n}`).join(', ')} retired and revoked.` : 'Nothing was live.';
        }),
    }),
  );

  const render = (d: SecretDetail, events: AuditEvent[], runEvents: Map<string, AuditEvent[]>) => {
    const mayRevoke = allows(me, 'revoke', name);
    const live = d.versions.filter((v) => !['revoked', 'failed'].includes(v.state));
    const targets = [...new Set(live.flatMap((v) => v.deliveries.map((x) => x.target)))];
    const inUse = d.versions.filter((v) => v.stillUsed);
    fill(
      body,
      ...inUse.map((v) => notice(`v${v.number} (${v.state}) is still in use${d.client ? ` by client ${d.client}` : ''}: retiring it would cut ${d.client ? 'that client' : 'its callers'} off.`)),
      h('section', { class: 'card' }, h('h2', {}, 'Versions'), timeline(d.versions)),
      h(
        'section',
        { class: 'card' },
        table(
          ['Version', 'State', 'Fingerprint', 'Issued', 'Promoted', 'Grace ends', 'Last used', 'Ended', 'Trigger', ''],
          d.versions.map((v) => ({
            attrs: { 'data-version': v.number },
            cells: [
              `v${v.number}`,
              badge(v.state),
              h('code', {}, v.fingerprint ?? '—'),
              time(v.issuedAt),
              time(v.promotedAt),
              time(v.graceEndsAt),
              v.stillUsed ? h('span', { 'data-still-used': v.number }, badge('in-use'), ' ', time(v.lastUsedAt)) : time(v.lastUsedAt),
              time(v.revokedAt ?? v.retiredAt),
              v.issuedBy?.trigger ?? '—',
              mayRevoke && REVOCABLE.has(v.state) ? h('button', { type: 'button', class: 'danger quiet', 'data-revoke': v.number, onclick: () => revoke(v) }, 'Revoke…') : '',
            ],
          })),
        ),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Delivery'),
        table(
          ['Version', ...targets],
          live.map((v) => ({
            cells: [
              `v${v.number}`,
              ...targets.map((t) => {
                const x = v.deliveries.find((d) => d.target === t);
                return x ? h('span', { title: x.lastError ?? '' }, badge(x.status), x.attempts > 1 ? ` ×${x.attempts}` : '') : '—';
              }),
            ],
          })),
          'Nothing delivered.',
        ),
        h('h2', {}, 'Sync'),
        table(
          ['Target', 'Checked', 'In sync', 'Drift', 'Streak', 'Error'],
          d.sync.map((s) => ({ cells: [s.target, time(s.lastCheckedAt), time(s.lastInSyncAt), s.lastDrift ?? '—', String(s.driftStreak), s.lastError ?? s.warning ?? '—'] })),
          'No drift check yet.',
        ),
      ),
      h(
        'section',
        { class: 'card runs' },
        h('h2', {}, 'Runs'),
        table(
          ['Run', 'Kind', 'Trigger', 'Status', 'Step', 'Started', 'Finished'],
          runs.flatMap((r) => [
            {
              attrs: { 'data-run': r.id, class: 'run-row' },
              cells: [
                h('button', { type: 'button', class: 'link', 'aria-expanded': String(expanded.has(r.id)), onclick: () => toggle(r.id) }, r.id.slice(0, 8)),
                r.emergency ? h('span', {}, r.kind, ' ', badge('emergency')) : r.kind,
                r.trigger,
                badge(r.status),
                r.step,
                time(r.startedAt),
                time(r.finishedAt),
              ],
            },
            ...(expanded.has(r.id) ? [{ attrs: { class: 'run-steps' }, cells: [runDetail(r, runEvents.get(r.id))] }] : []),
          ]),
          'No run yet.',
        ),
      ),
      h('section', { class: 'card' }, h('h2', {}, 'Audit events'), auditTable(events, false)),
    );
  };

  const toggle = (id: string) => {
    if (!expanded.delete(id)) expanded.add(id);
    void view.refresh();
  };

  const head = h('div', { class: 'section-head' });
  const view: View = {
    title: name,
    element: h('section', { class: 'secret' }, h('a', { href: '#/', class: 'back' }, '← All secrets'), head, message, body),
    async refresh() {
      try {
        detail = await api.get<SecretDetail>(path, { versions: 50 });
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return fill(body, notice(`No secret named ${name}.`));
        throw error;
      }
      const [runPage, audit] = await Promise.all([api.get<Page<Run>>('/runs', { secret: name, limit: 10 }), api.get<Page<AuditEvent>>('/audit', { secret: name, limit: 25 })]);
      runs = runPage.items;
      for (const r of runs) if (r.status === 'running') expanded.add(r.id);
      const runEvents = new Map(await Promise.all(runs.filter((r) => expanded.has(r.id)).map(async (r) => [r.id, (await api.get<Run & { steps: AuditEvent[] }>(`/runs/${r.id}`)).steps] as const)));
      fill(
        head,
        h('h1', {}, name),
        h('span', { class: 'badges' }, ...(detail.conditions.length ? detail.conditions : ['healthy']).map(badge), detail.removed ? badge('removed') : null),
        h('span', { class: 'facts' }, `current ${detail.currentVersion === null ? '—' : `v${detail.currentVersion}`} · last rotated `, time(detail.lastRotatedAt), ' · next ', time(detail.nextRotation)),
        allows(me, 'rotate', name) && !detail.removed ? drift : null,
        allows(me, 'rotate', name) && !detail.removed ? rotate : null,
        allows(me, 'revoke', name) && detail.removed && detail.versions.some((v) => REVOCABLE.has(v.state)) ? decommission : null,
      );
      render(detail, audit.items, runEvents);
    },
    pollMs: () => (detail?.activeRun || runs.some((r) => r.status === 'running') ? 1000 : 5000),
  };
  return view;
}
