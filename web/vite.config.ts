import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

/**
 * The web UI's build: web/src → web/dist (static files `berth serve` serves at `/`). No inline
 * script in the output (the server's Content-Security-Policy forbids it).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    // The first load is about 100 KB gzip (docs/benchmarks.md); the budget is 300 KB.
    chunkSizeWarningLimit: 800,
  },
});
