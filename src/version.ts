/** Berth's version, shown by `berth --version` and the health endpoint. */
export const BERTH_VERSION = '0.1.0';
