import { useMemo, useState, type FormEvent } from 'react';
import { useNavigate, useParams } from 'react-router';
import { useMutation } from '@tanstack/react-query';
import YAML, { LineCounter, isMap, isNode, isScalar, isSeq } from 'yaml';
import { ApiError, api, unwrap } from '../api/client';
import { useInvalidate, useSession } from '../api/hooks';
import { useTemplate } from '../api/templates';
import { NotFoundPage } from './NotFoundPage';

/**
 * /templates/new and /templates/NAME: the template file (issue 16) as YAML. The server checks
 * it when it is saved (there is no validate route for templates); each refusal's issue says its
 * field and, found in the text here, its line. Admin tokens create, change and delete (deleting
 * asks first; the server refuses while environments or templates extend it, naming them);
 * other tokens read the file only.
 */

const STARTER = `name: my-template
description: What environments built on it share
image: minimal
setup: |
  echo set up
`;

interface Issue {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** `a.b[0]` → ['a', 'b', 0] (the server's formatPath, undone). */
function pathParts(path: string): (string | number)[] {
  const parts: (string | number)[] = [];
  for (const match of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (match[2] !== undefined) parts.push(Number(match[2]));
    else if (match[1] !== undefined) parts.push(match[1]);
  }
  return parts;
}

/** The line and column of the field an issue names, looked up in the YAML as written. */
function located(yaml: string, issue: Issue): Issue {
  if (issue.line !== undefined || issue.path === '' || issue.path === '(root)') return issue;
  try {
    const lineCounter = new LineCounter();
    const document = YAML.parseDocument(yaml, { lineCounter });
    const parts = pathParts(issue.path);
    // The deepest part of the path the text has: the field's name where it is a mapping's key
    // (an unknown field, a wrong value), else the list item.
    for (let depth = parts.length; depth > 0; depth--) {
      const parent: unknown =
        depth === 1 ? document.contents : document.getIn(parts.slice(0, depth - 1), true);
      const last = parts[depth - 1];
      let node: unknown;
      if (isMap(parent))
        node = parent.items.find((pair) => isScalar(pair.key) && pair.key.value === last)?.key;
      else if (isSeq(parent) && typeof last === 'number') node = parent.items[last];
      if (isNode(node) && node.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        return { ...issue, line, column: col };
      }
    }
  } catch {
    // Not YAML the parser can read: the server's message says so.
  }
  return issue;
}

function issuesOf(error: unknown, yaml: string): Issue[] {
  if (error instanceof SyntaxIssue) return [error.issue];
  if (!(error instanceof ApiError)) return [{ path: '', message: String(error) }];
  const issues = error.details.issues;
  if (Array.isArray(issues) && issues.length > 0)
    return (issues as Issue[]).map((issue) => located(yaml, issue));
  return [{ path: '', message: error.message }];
}

/** A YAML syntax error, with its line, as an issue (nothing is sent). */
class SyntaxIssue extends Error {
  constructor(readonly issue: Issue) {
    super(issue.message);
  }
}

/**
 * The template as JSON ({ spec }): the server's YAML body is read as an environment file
 * (it asks for a repository), so the text is parsed here and the server checks the value;
 * its issues name fields, found in the text again for their lines.
 */
function templateBody(text: string): { spec: never } {
  const document = YAML.parseDocument(text, { lineCounter: new LineCounter(), prettyErrors: true });
  const error = document.errors[0];
  if (error) {
    const position = error.linePos?.[0];
    throw new SyntaxIssue({
      path: '',
      message: error.message.split('\n')[0] ?? 'not YAML',
      ...(position ? { line: position.line, column: position.col } : {}),
    });
  }
  return { spec: document.toJS() as never };
}

function DeletePanel({ name }: { name: string }) {
  const navigate = useNavigate();
  const invalidate = useInvalidate();
  const [confirming, setConfirming] = useState(false);
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE('/v1/templates/{name}', { params: { path: { name } } })),
    onSuccess: async () => {
      await invalidate(['templates']);
      void navigate('/templates');
    },
    onSettled: () => setConfirming(false),
  });
  return (
    <section className="panel" aria-label="Delete template">
      <h2>Delete</h2>
      {confirming ? (
        <div role="group" aria-label="Confirm deletion">
          <p>Delete template {name}? Environments and templates may no longer extend it.</p>
          <button type="button" onClick={() => remove.mutate()} disabled={remove.isPending}>
            Yes, delete {name}
          </button>{' '}
          <button type="button" onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" onClick={() => setConfirming(true)}>
          Delete template
        </button>
      )}
      {remove.error && (
        <p className="error" role="alert">
          {remove.error.message}
        </p>
      )}
    </section>
  );
}

export function TemplatePage() {
  const { name } = useParams();
  const session = useSession();
  const admin = session.data?.admin === true;
  const template = useTemplate(name);
  const navigate = useNavigate();
  const invalidate = useInvalidate();
  const savedYaml = useMemo(
    () => (template.data ? YAML.stringify(template.data.spec) : undefined),
    [template.data],
  );
  const [text, setText] = useState<string | undefined>(name === undefined ? STARTER : undefined);
  const yaml = text ?? savedYaml ?? '';
  const [issues, setIssues] = useState<Issue[]>([]);

  const save = useMutation({
    mutationFn: () =>
      name === undefined
        ? unwrap(api.POST('/v1/templates', { body: templateBody(yaml) }))
        : unwrap(
            api.PUT('/v1/templates/{name}', {
              params: { path: { name } },
              body: templateBody(yaml),
            }),
          ),
    onSuccess: async (saved) => {
      setText(undefined);
      setIssues([]);
      await invalidate(['templates'], ['template', saved.name], ['environments']);
      if (name === undefined) void navigate(`/templates/${encodeURIComponent(saved.name)}`);
    },
    onError: (error) => setIssues(issuesOf(error, yaml)),
  });

  if (name === undefined && session.data && !admin) return <NotFoundPage />;
  if (template.error instanceof ApiError && template.error.status === 404) return <NotFoundPage />;
  if (name !== undefined && template.isPending) return <p>Loading…</p>;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (admin) save.mutate();
  };
  const merged =
    save.data && 'environments' in save.data && Array.isArray(save.data.environments)
      ? (save.data.environments as string[])
      : [];
  return (
    <section>
      <h1>{name === undefined ? 'New template' : `Template ${name}`}</h1>
      {template.error && <p className="error">{template.error.message}</p>}
      <form onSubmit={submit} aria-label="Template file">
        <label htmlFor="template-yaml">Template file (YAML)</label>
        <textarea
          id="template-yaml"
          className="yaml"
          spellCheck={false}
          value={yaml}
          readOnly={!admin}
          onChange={(e) => setText(e.target.value)}
          aria-describedby="template-issues"
          aria-invalid={issues.length > 0}
        />
        <div id="template-issues" aria-live="polite">
          {issues.length > 0 && (
            <ul className="issues" aria-label="Errors">
              {issues.map((issue, i) => (
                <li key={i} className="error">
                  {issue.line !== undefined
                    ? `line ${issue.line}, column ${issue.column ?? 1}: `
                    : ''}
                  {issue.path ? <span className="mono">{issue.path}</span> : null}
                  {issue.path ? ': ' : ''}
                  {issue.message}
                </li>
              ))}
            </ul>
          )}
        </div>
        {admin ? (
          <button type="submit" disabled={save.isPending}>
            Save
          </button>
        ) : (
          <p className="sub">Only an admin token may change a template.</p>
        )}
        {save.isSuccess && (
          <span role="status">
            {' '}
            Saved.
            {merged.length > 0 ? ` Environments merged again: ${merged.join(', ')}.` : ''}
          </span>
        )}
      </form>
      {admin && name !== undefined && template.data && <DeletePanel name={name} />}
    </section>
  );
}
