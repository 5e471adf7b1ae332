import { execFileSync, spawnSync } from 'node:child_process';

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();

/** Removes the containers a test's Berth instance left and returns their ids (none: ''). */
export function removeInstanceContainers(instance: string): string {
  const left = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  if (left !== '') docker('rm', '-f', ...left.split('\n'));
  return left;
}

/**
 * Removes every image a test's Berth instance made. Snapshots are children of cache images,
 * and `docker rmi` refuses a parent while a child exists, so images are removed one at a
 * time in passes until none is left (or a pass removes nothing: what remains then has a child
 * outside this instance, and stays for the reaper).
 */
export function removeInstanceImages(instance: string): void {
  for (let pass = 0; pass < 5; pass += 1) {
    const images = docker('images', '-q', '--filter', `label=berth.instance=${instance}`);
    if (images === '') return;
    let removed = 0;
    for (const id of new Set(images.split('\n'))) {
      if (spawnSync('docker', ['rmi', '-f', id], { stdio: 'ignore' }).status === 0) removed += 1;
    }
    if (removed === 0) return;
  }
}
