import { Link } from 'react-router';
import { useQueries } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { useEnvironments, useTasks } from '../api/hooks';
import type { Environment } from '../api/types';
import { age } from '../format';

function repositoryOf(environment: Environment): string {
  const repository: unknown = environment.spec.repository;
  if (typeof repository === 'string') return repository;
  if (repository && typeof repository === 'object' && 'url' in repository)
    return String(repository.url);
  return '–';
}

export function EnvironmentsPage() {
  const environments = useEnvironments();
  const tasks = useTasks(undefined);
  const list = environments.data?.environments ?? [];
  const caches = useQueries({
    queries: list.map((e) => ({
      queryKey: ['cache', e.name],
      queryFn: () =>
        unwrap(api.GET('/v1/environments/{name}/cache', { params: { path: { name: e.name } } })),
    })),
  });
  return (
    <section>
      <div className="heading">
        <h1>Environments</h1>
        <Link className="button" to="/environments/new">
          New environment
        </Link>
      </div>
      {environments.isPending && <p>Loading…</p>}
      {environments.error && <p className="error">{environments.error.message}</p>}
      {environments.data && list.length === 0 && <p>No environments you may see.</p>}
      {list.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Repository</th>
                <th scope="col">Image</th>
                <th scope="col">Internet</th>
                <th scope="col">Cache</th>
                <th scope="col">Last task</th>
              </tr>
            </thead>
            <tbody>
              {list.map((environment, i) => {
                const entries = caches[i]?.data?.entries ?? [];
                const newest = [...entries].sort((a, b) =>
                  b.createdAt.localeCompare(a.createdAt),
                )[0];
                const cache = newest
                  ? `${newest.live ? 'live' : 'expired'}, ${age(newest.createdAt)}`
                  : caches[i]?.isPending
                    ? '…'
                    : 'none';
                const last = (tasks.data?.tasks ?? [])
                  .filter((t) => t.environment === environment.name)
                  .sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
                return (
                  <tr key={environment.id}>
                    <td>
                      <Link to={`/environments/${encodeURIComponent(environment.name)}`}>
                        {environment.name}
                      </Link>
                    </td>
                    <td className="mono">{repositoryOf(environment)}</td>
                    <td>{String(environment.spec.image)}</td>
                    <td>{String(environment.spec.internet.access)}</td>
                    <td>{cache}</td>
                    <td>
                      {last ? (
                        <Link to={`/tasks/${encodeURIComponent(last.id)}`}>
                          {last.status}, {age(last.createdAt)}
                        </Link>
                      ) : (
                        '–'
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
