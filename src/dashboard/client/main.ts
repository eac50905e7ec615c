/**
 * The dashboard's entry module: sign-in, the header, and a hash router over the views
 * (#/ overview, #/secrets/NAME detail, #/leaks, #/audit, #/config). Each view refreshes itself by
 * polling the admin API at the pace it asks for (a running rotation: every second), and
 * polling stops while the tab is hidden. Polls do not keep the session alive: only the
 * person's input does (api.ts), so an unattended tab is signed out after 30 minutes.
 */
import { allows, ApiError, type Me, session, whenSignedOut } from './api.js';
import { fill, h, notice } from './dom.js';
import { auditView } from './views/audit.js';
import { configView } from './views/config.js';
import { leaksView } from './views/leaks.js';
import { overviewView } from './views/overview.js';
import { secretView } from './views/secret.js';
import { signInForm } from './views/signin.js';

/** What the router shows: an element, refreshed at the pace `pollMs` asks for (null: once). */
export interface View {
  title: string;
  element: HTMLElement;
  refresh(): Promise<void>;
  pollMs(): number | null;
}

const app = document.getElementById('app')!;
let timer: number | undefined;
let current: View | undefined;
let generation = 0;

function viewFor(me: Me, hash: string): View {
  const secret = /^#\/secrets\/(.+)$/.exec(hash);
  if (secret) return secretView(me, decodeURIComponent(secret[1]!));
  if (hash === '#/leaks') return leaksView();
  if (hash === '#/audit') return auditView(me);
  if (hash === '#/config') return configView();
  return overviewView();
}

function header(me: Me): HTMLElement {
  const link = (hash: string, text: string) => h('a', { href: hash, class: location.hash === hash || (hash === '#/' && !location.hash) ? 'active' : undefined }, text);
  return h(
    'header',
    { class: 'bar' },
    h('a', { href: '#/', class: 'brand' }, 'rekey'),
    // Config revisions belong to no secret: they need `read` without a glob.
    h('nav', {}, link('#/', 'Overview'), link('#/leaks', 'Leaks'), link('#/audit', 'Audit'), allows(me, 'read') ? link('#/config', 'Config') : null),
    h(
      'div',
      { class: 'who' },
      h('span', { class: 'token-name', title: me.scopes.join(' ') }, me.name),
      h('button', { type: 'button', class: 'quiet', id: 'sign-out', onclick: () => void session.signOut().then(leave, () => showSignIn()) }, 'Sign out'),
    ),
  );
}

async function tick(view: View, mine: number): Promise<void> {
  if (mine !== generation) return;
  const status = view.element.querySelector(':scope > .refresh-error');
  try {
    await view.refresh();
    status?.remove();
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof ApiError && error.code === 'REKEY_API_SESSION_INVALID') return;
    if (!status) view.element.prepend(h('div', { class: 'refresh-error' }, notice(error instanceof Error ? error.message : 'refresh failed')));
  }
  const pace = view.pollMs();
  if (pace !== null && mine === generation) timer = window.setTimeout(() => void (document.hidden ? undefined : tick(view, mine)), pace);
}

function show(me: Me): void {
  window.clearTimeout(timer);
  const mine = ++generation;
  current = viewFor(me, location.hash);
  document.title = `${current.title} · rekey`;
  fill(app, header(me), h('main', {}, current.element));
  void tick(current, mine);
}

/**
 * After signing out: the sign-in form, and then the provider's logout page when there is one.
 * The form first, so the page the browser keeps for its back button (the back/forward cache)
 * holds nothing of what the session showed, and no poll that would run again on return.
 */
function leave(endSession: string | undefined): void {
  showSignIn();
  if (endSession) location.assign(endSession);
}

function showSignIn(message?: string): void {
  window.clearTimeout(timer);
  generation++;
  current = undefined; // nothing to refresh when the tab is shown again
  document.title = 'Sign in · rekey';
  fill(app, signInForm((me) => start(me), message));
}

function start(me: Me): void {
  window.onhashchange = () => show(me);
  document.onvisibilitychange = () => {
    if (!document.hidden && current) {
      window.clearTimeout(timer);
      void tick(current, generation);
    }
  };
  show(me);
}

whenSignedOut(() => showSignIn('Your session has ended. Sign in again.'));
session.current().then(
  (me) => (me ? start(me) : showSignIn()),
  () => showSignIn('rekey is not reachable.'),
);
