// The command-line decoder: a whole stream, a damaged one (its intact prefix, a warning), a broken
// header (one line, exit 2), bad arguments.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../bin/progs-decode.mjs", import.meta.url));
const DIR = process.env.PROGS_CONFORMANCE_DIR;
const run = (...args) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
const tmp = mkdtempSync(join(tmpdir(), "progs-decode-"));
const stream = join(DIR, "l4_rule_predictors.progs");
const info = JSON.parse(readFileSync(join(DIR, "l4_rule_predictors.json"), "utf8"));

test("--anchors writes every LoD's anchors as flat arrays", () => {
  const out = join(tmp, "a.json");
  const r = run(stream, "--anchors", out);
  assert.equal(r.status, 0, r.stderr);
  const a = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(a.count, info.anchors);
  assert.equal(a.keys.length, 3 * a.count);
  assert.equal(a.feature.length, a.count * info.feat_dim);
  assert.equal(a.offsets.length, a.count * 3 * info.n_offsets);
  const lod2 = join(tmp, "b.json");
  assert.equal(run(stream, "--lod", "2", "--anchors", lod2).status, 0);
  const b = JSON.parse(readFileSync(lod2, "utf8"));
  assert.equal(b.count, info.anchors_per_lod[0] + info.anchors_per_lod[1]);
  assert.deepEqual(b.feature, a.feature.slice(0, b.feature.length)); // later chunks never change earlier anchors
});

test("a truncated stream decodes its intact prefix with a warning", () => {
  const data = readFileSync(stream);
  const cut = info.chunks[3].offset + 10; // inside LOD3
  const path = join(tmp, "cut.progs");
  writeFileSync(path, data.subarray(0, cut));
  const r = run(path);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /LoD 2 of 4/);
  assert.match(r.stderr, /^warning: .*LOD3.*truncated/);
});

test("without an intact header: one line, exit 2, no stack trace", () => {
  const path = join(tmp, "head.progs");
  writeFileSync(path, readFileSync(stream).subarray(0, 60));
  for (const args of [[path], [join(tmp, "missing.progs")], [stream, "--lod", "zero"], [stream, "--bogus"]]) {
    const r = run(...args);
    assert.equal(r.status, 2, args.join(" "));
    assert.equal(r.stderr.trim().split("\n").length <= 2, true);
    assert.doesNotMatch(r.stderr, /at .*\.mjs:\d+/);
  }
  assert.ok(readdirSync(tmp).every((f) => !f.includes(".tmp-")));
});

test("--ply writes the LoD's Gaussians as an INRIA PLY", () => {
  const out = join(tmp, "s.ply");
  const r = run(stream, "--lod", "2", "--ply", out);
  assert.equal(r.status, 0, r.stderr);
  const text = new TextDecoder().decode(readFileSync(out).subarray(0, 2000));
  assert.match(text, /^ply\nformat binary_little_endian 1.0\nelement vertex (\d+)\n/);
  assert.ok(Number(/element vertex (\d+)/.exec(text)[1]) > 0);
  assert.match(text, /property float f_rest_44\nproperty float opacity/);
});
