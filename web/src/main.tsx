import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { BrowserRouter } from 'react-router';
import { App } from './App';
import { ApiError } from './api/client';
import { tasksQuery } from './api/hooks';
import './styles.css';

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // An unreachable server is retried for as long as the page is open (the banner says so);
      // an answer from the server (404, 401, …) is not retried.
      retry: (_count, error) => !(error instanceof ApiError),
      retryDelay: (count) => Math.min(1000 * 2 ** count, 5000),
      refetchOnWindowFocus: false,
    },
  },
});

// The list is read while the session is asked for, not after (a 401 signs out as any other).
if (window.location.pathname === '/tasks') void queryClient.prefetchQuery(tasksQuery(undefined));

const root = document.getElementById('root');
if (root)
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <BrowserRouter>
          <App />
        </BrowserRouter>
      </QueryClientProvider>
    </StrictMode>,
  );
