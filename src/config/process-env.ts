import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * What is read straight from the process environment without the configuration's schema: where
 * the login file is, BERTH_URL, BERTH_TOKEN, one named variable, a child's environment. Kept
 * apart from config.ts so that a CLI command that only talks to a server loads no schema library
 * at start (docs/benchmarks.md, CLI start-up). config.ts re-exports them.
 */

type Env = Record<string, string | undefined>;

export function defaultConfigDir(env: Env): string {
  const home = env.HOME ?? homedir();
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'berth');
}

/** Where the login file lives: BERTH_CONFIG_DIR, else the XDG configuration directory. */
export function configDirOf(env: Env = process.env): string {
  return resolve(env.BERTH_CONFIG_DIR || defaultConfigDir(env));
}

export function clientEnv(env: Env = process.env): { url?: string; token?: string } {
  return {
    ...(env.BERTH_URL ? { url: env.BERTH_URL } : {}),
    ...(env.BERTH_TOKEN ? { token: env.BERTH_TOKEN } : {}),
  };
}

/** One variable of the process environment, for `--secret-from-env NAME`. */
export function readVariable(name: string, env: Env = process.env): string | undefined {
  return env[name];
}

/** The environment for a child process on the host (git): this process's own, plus `extra`. */
export function childEnvironment(
  extra: Record<string, string> = {},
  env: Env = process.env,
): Record<string, string | undefined> {
  return { ...env, ...extra };
}

/**
 * Which build of the native addon the egress proxy loads: `asan` when BERTH_NATIVE_ASAN=1 (the
 * AddressSanitizer + UndefinedBehaviorSanitizer build that scripts/test-native-asan.sh runs the
 * egress tests with), else the normal one.
 */
export function nativeAddonBuild(env: Env = process.env): 'asan' | 'release' {
  return env.BERTH_NATIVE_ASAN === '1' ? 'asan' : 'release';
}
