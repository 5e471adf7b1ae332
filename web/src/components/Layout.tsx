import type { ReactNode } from 'react';
import { NavLink, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, setCsrfToken } from '../api/client';
import { useSignOut } from '../api/hooks';
import type { Session } from '../api/types';

export function Layout({ session, children }: { session: Session; children: ReactNode }) {
  const signOut = useSignOut();
  const navigate = useNavigate();
  const client = useQueryClient();
  // Signed out only when the server says so (or says the session had ended already): a
  // failed request leaves the session live, so the page stays and says so.
  const leave = () =>
    signOut.mutate(undefined, {
      onSuccess: () => {
        setCsrfToken(null);
        client.clear();
        void navigate('/login', { replace: true });
      },
    });
  const failed =
    signOut.error && !(signOut.error instanceof ApiError && signOut.error.status === 401);
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Berth</span>
        <nav aria-label="Main">
          <NavLink to="/tasks">Tasks</NavLink>
          <NavLink to="/environments">Environments</NavLink>
          <NavLink to="/templates">Templates</NavLink>
          <NavLink to="/usage">Usage</NavLink>
          {session.admin && <NavLink to="/tokens">Tokens</NavLink>}
        </nav>
        <span className="who">
          {session.name}
          {session.admin ? ' (admin)' : ''}
        </span>
        <button type="button" onClick={leave} disabled={signOut.isPending}>
          Sign out
        </button>
        {failed && (
          <p className="error" role="alert">
            sign-out failed; try again
          </p>
        )}
      </header>
      <main>{children}</main>
    </div>
  );
}
