import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from './client';

/** The usage report (`GET /v1/usage`) for the /usage page: the last `days` days, grouped. */

export const USAGE_GROUPINGS = ['environment', 'token', 'day'] as const;
export type UsageGrouping = (typeof USAGE_GROUPINGS)[number];

export function useUsage(by: UsageGrouping, days: number) {
  return useQuery({
    queryKey: ['usage', by, days],
    queryFn: () => {
      const from = new Date(Date.now() - days * 86_400_000).toISOString();
      return unwrap(api.GET('/v1/usage', { params: { query: { by, from } } }));
    },
  });
}
