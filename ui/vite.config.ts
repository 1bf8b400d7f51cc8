import { defineConfig } from "vite";

export default defineConfig({
  clearScreen: false,
  build: { target: "es2021", outDir: "dist", emptyOutDir: true },
  test: { environment: "jsdom" },
});
