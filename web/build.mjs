// `npm run build`: types from ../proto/chat.proto (buf + protoc-gen-es), a type check, then the
// page bundled by esbuild into ../chat/server/web/static/, which the server serves and git keeps.
// `node build.mjs OUT` writes the page to OUT instead (how a test checks the committed one).
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "../chat/server/web/static"));
const bin = (name) => join(here, "node_modules/.bin", name);

execFileSync(bin("buf"), ["generate"], { cwd: here, stdio: "inherit" });
execFileSync(bin("tsc"), ["--project", here], { stdio: "inherit" });
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [
    { in: join(here, "src/main.ts"), out: "app" },
    { in: join(here, "src/style.css"), out: "app" },
  ],
  outdir: out,
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(out, "index.html"));
