// Builds the player: web/dist/player/{player.html, progs-boot.js, progs-player.js, progs-worker.js,
// spark-internal.wasm} (a static site to serve next to streams) and progs-three.mjs (the embeddable ProgsMesh, with three and Spark left
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
// Spark's module carries its WebAssembly (1.7 MB: sorting, file decoders, LoD trees) as base64 inside
// the script. The pages ship it as its own file instead: brotli takes it to 416 kB instead of 595 kB
// as base64, the browser compiles it while it downloads, and player.html's boot script chooses when
// it is fetched (after LoD 1). The bundled Spark takes the compiled module from
// `globalThis.progsSparkWasm` when the page set one, else fetches spark-internal.wasm next to itself
// and leaves the promise there, so that the page can say so when it fails.
const sparkModule = join(web, "node_modules", "@sparkjsdev", "spark", "dist", "spark.module.js");
const embedded = /const WASM = decode64\("([A-Za-z0-9+/=]+)"\)\.buffer;\nconst WASM_MODULE = WebAssembly\.compile\(WASM\);\n/;
const sparkSource = readFileSync(sparkModule, "utf8");
const wasmMatch = embedded.exec(sparkSource);
if (!wasmMatch) throw new Error(`${sparkModule}: Spark's embedded WebAssembly was not found (a new Spark version? update scripts/build-player.mjs)`);
const sparkWasm = Buffer.from(wasmMatch[1], "base64");
const externalWasm = {
  name: "spark-external-wasm",
  setup(b) {
    b.onLoad({ filter: /spark\.module\.js$/ }, () => ({
      loader: "js",
      resolveDir: join(web, "player"),
      contents: `import { compileWasm as progsCompileWasm } from "./spark-wasm.ts";\n${sparkSource.replace(
        embedded,
        () => `const WASM_MODULE = (globalThis.progsSparkWasm ??= progsCompileWasm(new URL("./spark-internal.wasm", import.meta.url)));\n`,
      )}`,
    }));
  },
};
const common = { bundle: true, format: "esm", target: "es2022", minify: true, sourcemap: false, logLevel: "warning", legalComments: "eof", loader: { ".wasm": "binary" } };
await build({ ...common, entryPoints: [join(web, "player", "boot.ts")], outfile: join(out, "progs-boot.js") });
await build({ ...common, plugins: [externalWasm], entryPoints: [join(web, "player", "main.ts")], outfile: join(out, "progs-player.js") });
writeFileSync(join(out, "spark-internal.wasm"), sparkWasm);
await build({ ...common, entryPoints: [join(web, "player", "worker.ts")], outfile: join(out, "progs-worker.js") });
await build({
  ...common, minify: false, entryPoints: [join(web, "player", "progs-three.ts")], outfile: join(out, "progs-three.mjs"),
  external: ["three", "@sparkjsdev/spark"],
});
cpSync(join(web, "player", "player.html"), join(out, "player.html"));
// the benchmark's page for the formats users would ship instead (SPZ, streamed SOG), same renderer
const bench = join(web, "dist", "bench");
mkdirSync(bench, { recursive: true });
await build({ ...common, plugins: [externalWasm], entryPoints: [join(web, "bench", "baseline.ts")], outfile: join(bench, "baseline.js") });
writeFileSync(join(bench, "spark-internal.wasm"), sparkWasm);
cpSync(join(web, "bench", "baseline.html"), join(bench, "baseline.html"));
// Pre-compressed copies for servers that serve NAME.br / NAME.gz to browsers that accept them (progs
// serve does; so do nginx's gzip_static and brotli_static): Spark and three.js are most of the bytes.
const compress = (file) => {
  const data = readFileSync(file);
  writeFileSync(`${file}.gz`, gzipSync(data, { level: 9 }));
  writeFileSync(`${file}.br`, brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
};
for (const name of ["player.html", "progs-boot.js", "progs-player.js", "progs-worker.js", "spark-internal.wasm"]) compress(join(out, name));
// the benchmark's baseline page gets the same transfer advantage
for (const name of ["baseline.js", "spark-internal.wasm"]) compress(join(bench, name));
rmSync(pkg, { recursive: true, force: true });
cpSync(out, pkg, { recursive: true });
