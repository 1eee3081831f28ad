// Neural anchors → plain Gaussians in JavaScript agree with the Python export (`progs decode
// --distill 0`) within float32 rounding of the MLPs.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { decode, splatsToPly, toSplats } from "../dist/progs.mjs";

const DIR = process.env.PROGS_CONFORMANCE_DIR;
if (!DIR) throw new Error("PROGS_CONFORMANCE_DIR is not set");

/** A binary little-endian float PLY's vertex properties: {names, count, rows: Float32Array}. */
export function readPly(bytes) {
  const text = new TextDecoder().decode(bytes.subarray(0, 8192));
  const end = text.indexOf("end_header\n") + "end_header\n".length;
  const lines = text.slice(0, end).split("\n");
  const count = Number(lines.find((l) => l.startsWith("element vertex")).split(" ")[2]);
  const names = lines.filter((l) => l.startsWith("property float")).map((l) => l.split(" ")[2]);
  const view = new DataView(bytes.buffer, bytes.byteOffset + end);
  const rows = new Float32Array(count * names.length);
  for (let i = 0; i < rows.length; i++) rows[i] = view.getFloat32(4 * i, true);
  return { names, count, rows };
}

const names = readdirSync(DIR).filter((f) => f.endsWith(".splats.ply")).map((f) => f.slice(0, -11)).sort();

test("splat fixtures exist", () => assert.ok(names.length >= 3));

for (const name of names) {
  test(`${name}: splats of LoD 2 match Python's export`, { timeout: 1_800_000 }, () => {
    const info = JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8"));
    const want = readPly(new Uint8Array(readFileSync(join(DIR, `${name}.splats.ply`))));
    const r = decode(new Uint8Array(readFileSync(join(DIR, `${name}.progs`))), { maxLod: info.splat_lod });
    const got = readPly(splatsToPly(toSplats(r.decoder, info.splat_lod)));
    assert.deepEqual(got.names, want.names);
    assert.equal(got.count, want.count);
    const P = want.names.length;
    // SH coefficients come out of a least-squares fit, which amplifies float32 noise a little
    const tol = (prop) => (prop.startsWith("f_") ? 1e-4 : 5e-5);
    let worst = { err: 0 };
    for (let g = 0; g < want.count; g++) {
      for (let j = 0; j < P; j++) {
        const a = got.rows[g * P + j], b = want.rows[g * P + j];
        const err = Math.abs(a - b) / (1 + Math.abs(b));
        if (err > worst.err) worst = { err, g, prop: want.names[j], a, b };
      }
    }
    assert.ok(worst.err <= tol(worst.prop ?? ""), JSON.stringify(worst));
    if (process.env.PROGS_VERBOSE) console.log(name, JSON.stringify(worst));
  });
}
