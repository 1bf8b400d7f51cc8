// The console's script: src/console/main.ts built to one minified ES module that
// keywarden-server embeds (crates/server/src/console/assets/console.js, committed; the test
// command rebuilds it and fails if the committed file differs).
import { defineConfig } from 'vite';

export default defineConfig({
  clearScreen: false,
  logLevel: 'warn',
  build: {
    target: 'es2021',
    outDir: '../crates/server/src/console/assets',
    emptyOutDir: false,
    minify: true,
    modulePreload: false,
    rollupOptions: {
      input: 'src/console/main.ts',
      output: { format: 'es', entryFileNames: 'console.js' },
    },
  },
});
