import { Link } from 'react-router';
import { useEnvironments, useSession } from '../api/hooks';
import { useTemplates } from '../api/templates';

/**
 * /templates: the templates (issue 16) by name, with their description, the template each
 * extends, and the environments this token sees that extend it directly (from their specs'
 * `extends`; environments built on it through another template are not counted here). Admins
 * get a "New template" link; other tokens only read.
 */
export function TemplatesPage() {
  const session = useSession();
  const templates = useTemplates();
  const environments = useEnvironments();
  const extending = (name: string) =>
    (environments.data?.environments ?? [])
      .filter((environment) => (environment.spec as { extends?: unknown }).extends === name)
      .map((environment) => environment.name)
      .sort();
  const list = templates.data?.templates ?? [];
  return (
    <section>
      <h1>Templates</h1>
      {session.data?.admin && (
        <p>
          <Link to="/templates/new">New template</Link>
        </p>
      )}
      {templates.error && <p className="error">{templates.error.message}</p>}
      {templates.data && list.length === 0 && <p>No template yet.</p>}
      {list.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Templates">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Description</th>
                <th scope="col">Extends</th>
                <th scope="col">Environments extending it</th>
              </tr>
            </thead>
            <tbody>
              {list.map((template) => {
                const names = extending(template.name);
                return (
                  <tr key={template.id}>
                    <th scope="row">
                      <Link to={`/templates/${encodeURIComponent(template.name)}`}>
                        {template.name}
                      </Link>
                    </th>
                    <td>{template.spec.description ?? ''}</td>
                    <td>{template.spec.extends ?? '–'}</td>
                    <td>{names.length === 0 ? '–' : names.join(', ')}</td>
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
