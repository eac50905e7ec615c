/**
 * Sign-in: an admin API token, exchanged for a session cookie (the field is cleared either way),
 * or the configured OpenID Connect provider, whose refusals come back as `?signin=<reason>`.
 */
import { ApiError, type Me, session } from '../api.js';
import { h, notice } from '../dom.js';

/** What each refusal of an OpenID Connect sign-in (src/dashboard/oidc.ts) tells the person. */
const OIDC_REFUSALS: Record<string, string> = {
  state: 'That sign-in link is stale or was not started here. Sign in again.',
  provider: 'The identity provider did not sign you in.',
  exchange: 'The identity provider refused the sign-in code.',
  id_token: "The identity provider's answer could not be verified.",
  no_scope: 'You are signed in at the identity provider, but none of your groups may use rekey.',
};

export function signInForm(signedIn: (me: Me) => void, message?: string): HTMLElement {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'rkadm_…', 'aria-describedby': 'token-help' });
  const refusal = new URLSearchParams(location.search).get('signin');
  if (refusal !== null) history.replaceState(null, '', location.pathname + location.hash);
  const shown = message ?? (refusal === null ? undefined : (OIDC_REFUSALS[refusal] ?? 'Sign-in failed.'));
  const status = h('div', { class: 'status' }, shown ? notice(shown) : null);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin',
      // No action: the Content-Security-Policy (form-action 'none') keeps a token out of any URL even if this script failed.
      onsubmit: (event: Event) => {
        event.preventDefault();
        const token = input.value.trim();
        input.value = '';
        button.disabled = true;
        session.signIn(token).then(signedIn, (error: unknown) => {
          button.disabled = false;
          status.replaceChildren(notice(error instanceof ApiError && error.status === 401 ? 'That token is unknown, revoked or expired.' : error instanceof Error ? error.message : 'sign-in failed'));
          input.focus();
        });
      },
    },
    h('h1', {}, 'rekey'),
    h('label', { for: 'token' }, 'Admin API token'),
    input,
    h('p', { id: 'token-help', class: 'help' }, 'A token from `rekey token create --scope read ...`. It is exchanged for a session cookie and not kept by this page.'),
    button,
    status,
  );
  void session.oidcStart().then(
    (start) => start && button.after(h('a', { href: start, class: 'button', id: 'oidc-sign-in' }, 'Sign in with your identity provider')),
    () => undefined,
  );
  return h('div', { class: 'signin-page' }, form);
}
