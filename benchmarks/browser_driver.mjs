// Headless Chromium for Python, one JSON request per stdin line: {"id", "method", "params"} -> one JSON line
// {"id", "result"} or {"id", "error"} on stdout. benchmarks/browser.py is the Python side.
//
// It drives the system's browser (argv[2], e.g. Debian's /usr/bin/chromium) with playwright-core, which
// never downloads a browser of its own (https://playwright.dev/docs/api/class-browsertype#browser-type-launch,
// `executablePath`).
import {createInterface} from 'node:readline';
import {readFileSync} from 'node:fs';
import {chromium} from 'playwright-core';

const browser = await chromium.launch({
  executablePath: process.argv[2],
  headless: true,
  // --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let context = null;
let page = null;
let messages = [];

const methods = {
  async newPage({initScript = null, width = 1200, height = 800} = {}) {
    if (context) await context.close();
    context = await browser.newContext({viewport: {width, height}});
    page = await context.newPage();
    messages = [];
    page.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => messages.push(`pageerror: ${error.message}`));
    if (initScript) await page.addInitScript(initScript);
    return null;
  },
  async route({url, bodyFile = null, status = 200}) {
    // Answer requests for `url` (a glob) with a file's bytes (or an empty body) instead of the server's.
    const body = bodyFile ? readFileSync(bodyFile) : Buffer.alloc(0);
    await page.route(url, (route) => route.fulfill({status, body, contentType: 'application/octet-stream'}));
    return null;
  },
  goto: async ({url}) => (await page.goto(url), null),
  setFiles: async ({selector, files}) => (await page.setInputFiles(selector, files), null),
  select: async ({selector, value}) => (await page.selectOption(selector, value), null),
  fill: async ({selector, value}) => (await page.fill(selector, value), null),
  check: async ({selector}) => (await page.check(selector), null),
  click: async ({selector}) => (await page.click(selector), null),
  waitFor: async ({expression, timeout = 60000}) => (await page.waitForFunction(expression, null, {timeout}), null),
  evaluate: async ({expression}) => page.evaluate(expression),
  screenshot: async ({path, fullPage = true}) => (await page.screenshot({path, fullPage}), null),
  messages: async () => messages,
  version: async () => browser.version(),
};

const lines = createInterface({input: process.stdin});
// The Python side gone (stdin closed), even in the middle of a call: close the browser and leave.
lines.on('close', () => browser.close().finally(() => process.exit(0)));
for await (const line of lines) {
  if (!line.trim()) continue;
  const {id, method, params} = JSON.parse(line);
  let reply;
  try {
    if (!(method in methods)) throw new Error(`unknown method ${method}`);
    reply = {id, result: (await methods[method](params || {})) ?? null};
  } catch (error) {
    reply = {id, error: String(error.message || error)};
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
