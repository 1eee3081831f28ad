// Shared by the player's browser test and benchmark: `progs serve` on loopback and headless Chromium
// driven by playwright-core, with software WebGL (SwiftShader) unless PROGS_WEBGL names another ANGLE
// backend (`vulkan`, `gl`, `gles`, `default`: a GPU's, where the machine has one).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CHROMIUM = process.env.PROGS_CHROMIUM ?? "/usr/bin/chromium";
export const PROGS = process.env.PROGS_CLI ?? join(REPO, ".venv", "bin", "progs");
export const WEBGL = process.env.PROGS_WEBGL ?? "swiftshader";

/** Why the browser tests cannot run here, or null. */
export function unavailable() {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (set PROGS_CHROMIUM)`;
  if (!existsSync(PROGS)) return `no progs command at ${PROGS} (set PROGS_CLI)`;
  return null;
}

/** `progs serve DIR` on a free loopback port; resolves to { url, requests, stop }. `requests` gets
 * one entry per response the server logs ("GET /path" lines are parsed from its access log). */
export function serve(dir) {
  return new Promise((resolve, reject) => {
    const p = spawn(PROGS, ["serve", dir, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    const onData = (d) => {
      text += d.toString();
      const m = text.match(/at (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) {
        p.stderr.off("data", onData);
        resolve({ url: m[1], stop: () => p.kill("SIGINT") });
      }
    };
    p.stderr.on("data", onData);
    p.stdout.on("data", onData);
    p.on("exit", (code) => reject(new Error(`progs serve exited (${code}): ${text}`)));
  });
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...(WEBGL === "swiftshader" ? ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"] : [`--use-angle=${WEBGL}`, "--enable-gpu"]),
      "--ignore-gpu-blocklist",
    ],
  });
}

/** A page that records console errors, page errors and the Range requests it makes. */
export async function openPage(browser, viewport) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  const requests = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("request", (r) => requests.push({ url: r.url(), range: r.headers()["range"] ?? null }));
  return { page, errors, requests };
}

/** Waits until the player has loaded what it will load and Spark has drawn the result. */
export async function settled(page, timeout = 600_000) {
  await page.waitForFunction(() => window.progs && window.progs.done && !window.progs.busy && window.progs.framesSinceChange >= 1, null, {
    timeout, polling: 100,
  });
}

/** PSNR (dB) of the page's current screenshot against a reference image served at `refUrl`. */
export async function psnrAgainst(page, refUrl) {
  const shot = (await page.screenshot({ type: "png" })).toString("base64");
  return page.evaluate(async ({ shot, refUrl }) => {
    const pixels = async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const c = new OffscreenCanvas(img.width, img.height);
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      return g.getImageData(0, 0, img.width, img.height);
    };
    const a = await pixels(`data:image/png;base64,${shot}`);
    const b = await pixels(refUrl);
    if (a.width !== b.width || a.height !== b.height) throw new Error(`sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
    let se = 0;
    let n = 0;
    for (let i = 0; i < a.data.length; i += 4) {
      for (let c = 0; c < 3; c++) {
        const d = (a.data[i + c] - b.data[i + c]) / 255;
        se += d * d;
        n++;
      }
    }
    return -10 * Math.log10(Math.max(se / n, 1e-12));
  }, { shot, refUrl });
}
