// Builds the player: web/dist/player/{player.html, progs-player.js, progs-worker.js} (a static site
// to serve next to streams) and progs-three.mjs (the embeddable ProgsMesh, with three and Spark left
// to the page's own import map or bundler). The same files are copied into the Python package, which
// `progs serve` and `progs view` serve at /player.html.
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(web, "dist", "player");
const pkg = join(web, "..", "src", "progs", "stream", "player");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const common = { bundle: true, format: "esm", target: "es2022", minify: true, sourcemap: false, logLevel: "warning", legalComments: "eof", loader: { ".wasm": "binary" } };
await build({ ...common, entryPoints: [join(web, "player", "main.ts")], outfile: join(out, "progs-player.js") });
await build({ ...common, entryPoints: [join(web, "player", "worker.ts")], outfile: join(out, "progs-worker.js") });
await build({
  ...common, minify: false, entryPoints: [join(web, "player", "progs-three.ts")], outfile: join(out, "progs-three.mjs"),
  external: ["three", "@sparkjsdev/spark"],
});
cpSync(join(web, "player", "player.html"), join(out, "player.html"));
// the benchmark's page for the formats users would ship instead (SPZ, streamed SOG), same renderer
const bench = join(web, "dist", "bench");
mkdirSync(bench, { recursive: true });
await build({ ...common, entryPoints: [join(web, "bench", "baseline.ts")], outfile: join(bench, "baseline.js") });
cpSync(join(web, "bench", "baseline.html"), join(bench, "baseline.html"));
// Pre-compressed copies for servers that serve NAME.br / NAME.gz to browsers that accept them (progs
// serve does; so do nginx's gzip_static and brotli_static): Spark and three.js are most of the bytes.
const compress = (file) => {
  const data = readFileSync(file);
  writeFileSync(`${file}.gz`, gzipSync(data, { level: 9 }));
  writeFileSync(`${file}.br`, brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
};
for (const name of ["player.html", "progs-player.js", "progs-worker.js"]) compress(join(out, name));
compress(join(bench, "baseline.js")); // the benchmark's baseline page gets the same transfer advantage
rmSync(pkg, { recursive: true, force: true });
cpSync(out, pkg, { recursive: true });
