import { useState, type FormEvent } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { ApiError, setCsrfToken } from '../api/client';
import { useSession, useSignIn } from '../api/hooks';
import { safeNext } from '../App';

/** The token is sent once, in a POST body, and exchanged for an HttpOnly session cookie. */
export function LoginPage() {
  const [token, setToken] = useState('');
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const signIn = useSignIn();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    signIn.mutate(token.trim(), {
      onSuccess: (session) => {
        setCsrfToken(session.csrfToken);
        setToken('');
        void navigate(safeNext(params.get('next')), { replace: true });
      },
    });
  };
  const error = signIn.error;
  // Another port or subdomain of this host set a second session cookie: no sign-in can help.
  const session = useSession();
  const ambiguous =
    session.error instanceof ApiError && session.error.details.session === 'ambiguous';
  return (
    <main className="login">
      <h1>Berth</h1>
      <form onSubmit={submit}>
        <label htmlFor="token">Token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          required
        />
        <button type="submit" disabled={signIn.isPending}>
          Sign in
        </button>
        {error && (
          <p className="error" role="alert">
            {error instanceof ApiError && error.status === 401 ? 'token not valid' : error.message}
          </p>
        )}
        {ambiguous && (
          <p className="error" role="alert">
            Your browser holds more than one Berth session cookie (another site on this host may
            have set one). Clear this site&apos;s cookies in the browser, then sign in again.
          </p>
        )}
      </form>
    </main>
  );
}
