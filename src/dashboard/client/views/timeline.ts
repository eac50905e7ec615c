/**
 * The version timeline of one secret: a row per version from issue to its end (retired,
 * revoked, failed), drawn as SVG bars on one time axis: pending (issued, being deployed and
 * verified), current, and the overlap window (previous, still accepted until its grace ends),
 * with marks where a version was reported leaked and where it was blocked. The axis runs from
 * the first issue to a little past now: a grace window of days ahead runs off the right edge
 * (its end is in the versions table) rather than squeezing the past into a sliver.
 */
import type { Version } from '../api.js';
import { badge, h, svg } from '../dom.js';

const WIDTH = 1000;
const ms = (iso: string | null) => (iso ? new Date(iso).getTime() : undefined);

export function timeline(versions: Version[], now = Date.now()): HTMLElement {
  if (!versions.length) return h('p', { class: 'empty' }, 'No version yet.');
  const ordered = [...versions].sort((a, b) => a.number - b.number);
  const end = (v: Version) => ms(v.revokedAt) ?? ms(v.retiredAt) ?? (v.state === 'failed' ? ms(v.compromisedAt) ?? ms(v.issuedAt)! : undefined);
  const start = Math.min(...ordered.map((v) => ms(v.issuedAt)!));
  const stop = now + Math.max(now - start, 10_000) * 0.15;
  const span = stop - start;
  const x = (t: number) => Math.min(((t - start) / span) * WIDTH, WIDTH);
  const bar = (kind: string, from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined || to < from ? [] : [svg('rect', { class: `seg seg-${kind}`, x: x(from), y: 2, width: Math.max(x(to) - x(from), 2), height: 10 })];
  const mark = (kind: string, at: number | undefined) => (at === undefined ? [] : [svg('rect', { class: `mark mark-${kind}`, x: Math.max(x(at) - 2, 0), y: 0, width: 4, height: 14 })]);

  const rows = ordered.map((v, i) => {
    const issued = ms(v.issuedAt)!;
    const promoted = ms(v.promotedAt);
    const finished = end(v);
    // A version stops being current when the next one is promoted; its overlap lasts until its grace ends (or it is retired first).
    const demoted = ordered.slice(i + 1).map((n) => ms(n.promotedAt)).find((t) => t !== undefined);
    const liveUntil = finished ?? now;
    const overlapEnd = ms(v.graceEndsAt) !== undefined ? Math.min(ms(v.graceEndsAt)!, finished ?? Infinity) : undefined;
    const segments = [
      ...bar('pending', issued, promoted ?? liveUntil),
      ...bar('current', promoted, demoted ?? (promoted !== undefined ? liveUntil : undefined)),
      ...bar('overlap', demoted, overlapEnd ?? (demoted !== undefined && !finished ? liveUntil : undefined)),
      ...(overlapEnd !== undefined && overlapEnd > now && !finished ? bar('overlap-ahead', now, overlapEnd) : []),
      ...mark('leak', ms(v.compromisedAt)),
      ...mark('blocked', ms(v.blockedAt)),
    ];
    return h(
      'div',
      { class: 'tl-row', 'data-version': v.number, 'data-state': v.state },
      h('span', { class: 'tl-label' }, `v${v.number} `, badge(v.state)),
      h('span', { class: 'tl-track' }, svg('svg', { viewBox: `0 0 ${WIDTH} 14`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `version ${v.number}: ${v.state}` }, ...segments, svg('rect', { class: 'mark mark-now', x: x(now) - 1, y: 0, width: 2, height: 14 }))),
    );
  });
  return h(
    'div',
    { class: 'timeline' },
    ...rows.reverse(),
    h('div', { class: 'tl-axis' }, h('span', {}, new Date(start).toLocaleString()), h('span', {}, `now: ${new Date(now).toLocaleTimeString()} ▸`)),
    h('div', { class: 'tl-legend' }, ...['pending', 'current', 'overlap', 'leak', 'blocked'].map((k) => h('span', { class: `legend legend-${k}` }, k === 'overlap' ? 'overlap (previous, in grace)' : k))),
  );
}
