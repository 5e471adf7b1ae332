import type { ReactNode } from 'react';
import { NavLink, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { setCsrfToken } from '../api/client';
import { useSignOut } from '../api/hooks';
import type { Session } from '../api/types';

export function Layout({ session, children }: { session: Session; children: ReactNode }) {
  const signOut = useSignOut();
  const navigate = useNavigate();
  const client = useQueryClient();
  const leave = () =>
    signOut.mutate(undefined, {
      onSettled: () => {
        setCsrfToken(null);
        client.clear();
        void navigate('/login', { replace: true });
      },
    });
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Berth</span>
        <nav aria-label="Main">
          <NavLink to="/tasks">Tasks</NavLink>
          <NavLink to="/environments">Environments</NavLink>
          {session.admin && <NavLink to="/tokens">Tokens</NavLink>}
        </nav>
        <span className="who">
          {session.name}
          {session.admin ? ' (admin)' : ''}
        </span>
        <button type="button" onClick={leave} disabled={signOut.isPending}>
          Sign out
        </button>
      </header>
      <main>{children}</main>
    </div>
  );
}
