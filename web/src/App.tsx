import { lazy, Suspense, useEffect } from 'react';
import { Navigate, Route, Routes, useLocation, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { onSignedOut, setCsrfToken } from './api/client';
import { useSession } from './api/hooks';
import { Layout } from './components/Layout';
import { ServerBanner } from './components/ServerBanner';
import { LoginPage } from './pages/LoginPage';
import { TasksPage } from './pages/TasksPage';
import { EnvironmentsPage } from './pages/EnvironmentsPage';
import { TokensPage } from './pages/TokensPage';
import { UsagePage } from './pages/UsagePage';
import { TemplatesPage } from './pages/TemplatesPage';
import { NotFoundPage } from './pages/NotFoundPage';
import { safeNext as safeNextOf } from './untrusted-text';

// The task page (diff viewer, log renderer) and the environment editor (YAML) load when first
// opened, so the task list's first load stays small.
const TaskPage = lazy(() => import('./pages/TaskPage').then((m) => ({ default: m.TaskPage })));
const EnvironmentPage = lazy(() =>
  import('./pages/EnvironmentPage').then((m) => ({ default: m.EnvironmentPage })),
);
const TemplatePage = lazy(() =>
  import('./pages/TemplatePage').then((m) => ({ default: m.TemplatePage })),
);

/** Where /login sends the user on: a path of this UI only (never another origin). */
export function safeNext(next: string | null): string {
  return safeNextOf(next, window.location.origin);
}

function SignedIn() {
  const session = useSession();
  const location = useLocation();
  const navigate = useNavigate();
  const client = useQueryClient();

  useEffect(
    () =>
      onSignedOut(() => {
        setCsrfToken(null);
        client.clear();
        // Already on /login (a late 401 of a request the page started before): stay, keeping
        // the page asked for (never /login itself as the next page).
        if (window.location.pathname === '/login') return;
        const here = window.location.pathname + window.location.search;
        void navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
      }),
    [client, navigate],
  );
  useEffect(() => setCsrfToken(session.data?.csrfToken ?? null), [session.data]);

  if (session.isPending) return <p className="loading">Loading…</p>;
  if (session.isError || !session.data) {
    const here = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(here)}`} replace />;
  }
  return (
    <Layout session={session.data}>
      <Suspense fallback={<p className="loading">Loading…</p>}>
        <Routes>
          <Route path="/" element={<Navigate to="/tasks" replace />} />
          <Route path="/tasks" element={<TasksPage />} />
          <Route path="/tasks/:id" element={<TaskPage />} />
          <Route path="/environments" element={<EnvironmentsPage />} />
          <Route path="/environments/new" element={<EnvironmentPage />} />
          <Route path="/environments/:name" element={<EnvironmentPage />} />
          <Route path="/templates" element={<TemplatesPage />} />
          <Route path="/templates/new" element={<TemplatePage />} />
          <Route path="/templates/:name" element={<TemplatePage />} />
          <Route path="/tokens" element={session.data.admin ? <TokensPage /> : <NotFoundPage />} />
          <Route path="/usage" element={<UsagePage />} />
          <Route path="*" element={<NotFoundPage />} />
        </Routes>
      </Suspense>
    </Layout>
  );
}

export function App() {
  return (
    <>
      <ServerBanner />
      <Routes>
        <Route path="/login" element={<LoginPage />} />
        <Route path="*" element={<SignedIn />} />
      </Routes>
    </>
  );
}
