import { useSyncExternalStore } from 'react';
import { isReachable, onReachability } from '../api/client';

/** Shown while the server cannot be reached; the queries keep retrying underneath. */
export function ServerBanner() {
  const reachable = useSyncExternalStore(onReachability, isReachable);
  if (reachable) return null;
  return (
    <div className="banner" role="alert">
      Cannot reach the Berth server. Retrying…
    </div>
  );
}
