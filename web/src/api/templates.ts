import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from './client';

/** Templates (`/v1/templates…`, issue 16) for the /templates pages: any token reads them. */

export function useTemplates() {
  return useQuery({
    queryKey: ['templates'],
    queryFn: () => unwrap(api.GET('/v1/templates')),
  });
}

export function useTemplate(name: string | undefined) {
  return useQuery({
    queryKey: ['template', name ?? null],
    queryFn: () =>
      unwrap(api.GET('/v1/templates/{name}', { params: { path: { name: name ?? '' } } })),
    enabled: name !== undefined,
  });
}
