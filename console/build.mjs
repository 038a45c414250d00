// Builds the console into dist/: index.html, assets/app.js, assets/app.css, assets/icon.svg.
// The output is deterministic (no hashes, no timestamps, no source maps), so CI can rebuild it
// and compare it byte for byte with the committed copy that the edge embeds.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const out = new URL("./dist/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(`${out}assets`, { recursive: true });

await build({
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  charset: "utf8",
  outdir: `${out}assets`,
  logLevel: "warning",
});
copyFileSync("src/index.html", `${out}index.html`);
copyFileSync("src/icon.svg", `${out}assets/icon.svg`);
