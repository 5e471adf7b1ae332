import { useState, type FormEvent } from 'react';
import { useMutation } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { useInvalidate, useTokens } from '../api/hooks';
import type { CreatedToken } from '../api/types';
import { age } from '../format';

/** Tokens (admins only): create (the value shown once), list, revoke. */
export function TokensPage() {
  const tokens = useTokens(true);
  const invalidate = useInvalidate();
  const [name, setName] = useState('');
  const [admin, setAdmin] = useState(false);
  const [created, setCreated] = useState<CreatedToken | undefined>();
  const [revoking, setRevoking] = useState<string | undefined>();
  const create = useMutation({
    mutationFn: () => unwrap(api.POST('/v1/tokens', { body: { name, admin } })),
    onSuccess: async (token) => {
      setCreated(token);
      setName('');
      await invalidate(['tokens']);
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE('/v1/tokens/{idOrName}', { params: { path: { idOrName: id } } })),
    onSuccess: async () => {
      setRevoking(undefined);
      await invalidate(['tokens']);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <section>
      <h1>Tokens</h1>
      <form className="panel" onSubmit={submit} aria-label="New token">
        <label htmlFor="token-name">Name</label>
        <input id="token-name" value={name} onChange={(e) => setName(e.target.value)} required />
        <label>
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} />{' '}
          Admin
        </label>
        <button type="submit" disabled={create.isPending}>
          Create token
        </button>
        {create.error && <p className="error">{create.error.message}</p>}
      </form>
      {created && (
        <div className="panel" role="status">
          <p>
            Token <strong>{created.name}</strong> (shown once, keep it):
          </p>
          <code className="secret-once">{created.token}</code>
          <button type="button" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Admin</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(tokens.data?.tokens ?? []).map((token) => (
              <tr key={token.id}>
                <td>{token.name}</td>
                <td>{token.admin ? 'yes' : 'no'}</td>
                <td>{age(token.createdAt)}</td>
                <td>{age(token.lastUsedAt)}</td>
                <td>{token.revokedAt ? `revoked ${age(token.revokedAt)}` : 'live'}</td>
                <td>
                  {!token.revokedAt &&
                    (revoking === token.id ? (
                      <>
                        <button type="button" onClick={() => revoke.mutate(token.id)}>
                          Revoke {token.name}
                        </button>{' '}
                        <button type="button" onClick={() => setRevoking(undefined)}>
                          Keep
                        </button>
                      </>
                    ) : (
                      <button type="button" onClick={() => setRevoking(token.id)}>
                        Revoke…
                      </button>
                    ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {revoke.error && <p className="error">{revoke.error.message}</p>}
    </section>
  );
}
