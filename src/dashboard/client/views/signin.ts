/** Sign-in: an admin API token, exchanged for a session cookie; the field is cleared either way. */
import { ApiError, type Me, session } from '../api.js';
import { h, notice } from '../dom.js';

export function signInForm(signedIn: (me: Me) => void, message?: string): HTMLElement {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'rkadm_…', 'aria-describedby': 'token-help' });
  const status = h('div', { class: 'status' }, message ? notice(message) : null);
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
  return h('div', { class: 'signin-page' }, form);
}
