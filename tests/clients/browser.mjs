// Opens a page in headless Chromium (puppeteer-core, the Debian `chromium`
// package) and waits until it has received WANT messages, or TIMEOUT_MS.
// Prints {"received": [...], "opened": n, "errors": [...]} as one JSON line.
//
//   node browser.mjs PAGE_URL WANT TIMEOUT_MS
import puppeteer from "puppeteer-core";

const [url, want, timeout] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  // Root in CI has no user namespaces for the sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const errors = [];
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  await page
    .waitForFunction((n) => window.received && window.received.length >= n, { timeout, polling: 100 }, want)
    .catch((e) => errors.push(String(e)));
  const state = await page.evaluate(() => ({ received: window.received, opened: window.opened }));
  console.log(JSON.stringify({ ...state, errors }));
} finally {
  await browser.close();
}
