import { defineConfig } from "vite";

// `npm run dev` serves the console with hot reload and sends the API to a running
// `fangkong demo` (or serve) on 127.0.0.1:8080; `npm run build` writes dist/, which
// build.rs of fangkong-server compiles into the binary.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    chunkSizeWarningLimit: 2000,
    sourcemap: false,
    target: "es2022",
  },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});
