/* global process */
// What the benchmarks share: the image they run (`--image REF`, else BERTH_TEST_IMAGE, else
// berth/minimal:latest) and the removal of what a benchmark's Berth instance left on the engine.
import { execFileSync } from 'node:child_process';

/** The image a benchmark runs its sandboxes from. */
export function benchImage() {
  const flag = process.argv.indexOf('--image');
  return flag > 0
    ? process.argv[flag + 1]
    : (process.env.BERTH_TEST_IMAGE ?? 'berth/minimal:latest');
}

/**
 * Removes a benchmark instance's containers, then its snapshots, then its cache entries
 * (snapshots are children of the cache image: the engine refuses the parent first).
 */
export function removeBenchInstance(instance) {
  const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  const left = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  if (left !== '') docker('rm', '-f', ...left.split('\n'));
  for (const kind of ['snapshot', 'cache']) {
    const ids = docker(
      'images',
      '-q',
      '--filter',
      `label=berth.instance=${instance}`,
      '--filter',
      `label=berth.kind=${kind}`,
    );
    if (ids !== '')
      execFileSync('docker', ['rmi', '-f', ...new Set(ids.split('\n'))], { stdio: 'ignore' });
  }
}
