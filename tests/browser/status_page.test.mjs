// The server's status page in a real browser: deploy a pipeline through the API, push events,
// and the page (headless Chromium from Debian, driven by playwright-core) shows the counts
// rising and the tailed outputs arriving. VARPULIS_BIN names the binary (scripts/test sets it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const bin = process.env.VARPULIS_BIN;
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function waitFor(check, what, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PROGRAM = [
  "event Reading:",
  "    zone: str",
  "    temp: float",
  "",
  "stream Hot = Reading",
  "    .where(temp > 30.0)",
  "    .emit(zone: zone, temp: temp)",
  "",
].join("\n");

test("the status page shows counts rising and the tail of a stream", { timeout: 120000 }, async () => {
  assert.ok(bin, "set VARPULIS_BIN to the varpulis binary");
  const dir = mkdtempSync(join(tmpdir(), "varpulis-page-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(bin, ["server", "--listen", `127.0.0.1:${port}`, "--state-dir", join(dir, "state")], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  let browser;
  try {
    await waitFor(async () => (await fetch(base + "/healthz")).ok, "the server");
    const deployed = await fetch(base + "/api/v1/pipelines", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "demo", source: PROGRAM }),
    });
    assert.equal(deployed.status, 201);
    await waitFor(async () => (await (await fetch(base + "/api/v1/pipelines/demo")).json()).state === "running", "running");

    browser = await chromium.launch({
      executablePath: browserPath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
    });
    const page = await browser.newPage();
    await page.goto(base + "/?pipeline=demo&stream=Hot");
    await page.waitForSelector('tr[data-pipeline="demo"] td.state-running');
    await page.waitForSelector("#tail-box:not([hidden])");

    let sent = 0;
    const push = async (n) => {
      for (let i = 0; i < n; i++) {
        sent += 1;
        const r = await fetch(base + "/api/v1/pipelines/demo/events", {
          method: "POST",
          body: JSON.stringify({ event_type: "Reading", zone: "zone-" + sent, temp: 40 + sent }),
        });
        assert.equal(r.status, 202);
      }
    };
    const shown = () =>
      page.$eval('tr[data-stream="Hot"] td.events-out', (td) => Number(td.textContent));

    await push(3);
    await page.waitForFunction(
      () => Number(document.querySelector('tr[data-stream="Hot"] td.events-out')?.textContent) >= 3,
      null,
      { timeout: 20000 },
    );
    const before = await shown();
    await push(4);
    await page.waitForFunction(
      (n) => Number(document.querySelector('tr[data-stream="Hot"] td.events-out')?.textContent) > n,
      before,
      { timeout: 20000 },
    );
    assert.ok((await shown()) > before, "the count rises on the page");

    await page.waitForFunction(() => document.querySelectorAll("#tail .output").length >= 4, null, {
      timeout: 20000,
    });
    const lines = await page.$$eval("#tail .output", (ds) => ds.map((d) => JSON.parse(d.textContent)));
    assert.ok(lines.every((o) => o.stream === "Hot"));
    assert.ok(lines.some((o) => o.zone === "zone-" + sent), "the newest output is tailed");
    const events = await page.$eval('tr[data-pipeline="demo"] td.events-in', (td) => Number(td.textContent));
    assert.ok(events >= 4, "events in: " + events);
    if (process.env.VARPULIS_SCREENSHOT) await page.screenshot({ path: process.env.VARPULIS_SCREENSHOT, fullPage: true });
  } finally {
    if (browser) await browser.close();
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
});
