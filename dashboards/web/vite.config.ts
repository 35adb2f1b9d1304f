/**
 * The activity monitor's build: React through Vite into dist/web, which the
 * collector serves at `/`. Everything is bundled; nothing is fetched at run
 * time.
 */
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [react()],
  build: {
    outDir: '../../dist/web',
    emptyOutDir: true,
    // Hashed names: a release's assets never mix with the last one's in a cache.
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:4318', '/metrics': 'http://127.0.0.1:4318', '/readyz': 'http://127.0.0.1:4318' } },
})
