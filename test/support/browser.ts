/**
 * Debian's Chromium driven by playwright-core for the dashboard's tests: launched with the flags
 * that keep it off the closed network, every request that is not to loopback (127.0.0.0/8) refused (a page
 * asking for a web font must not reach out), and the page's console errors and
 * Content-Security-Policy violations collected for the tests to assert on.
 */
import { type Browser, type BrowserContext, chromium, type ConsoleMessage, type Page } from 'playwright-core';

export interface Chromium {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions, with the URL of the script or resource that raised them. */
  consoleErrors: Array<{ text: string; url: string }>;
  /** CSP violations as the page reported them: `<directive> <blocked URI>`. */
  violations: string[];
}

/**
 * `backForwardCache`: let Chromium keep pages for the back button as browsers people use do
 * (playwright turns it off by default); a page restored from it fires no load event
 * (`page.goBack({ waitUntil: 'commit' })`).
 */
export async function openChromium(viewport = { width: 1280, height: 860 }, options: { backForwardCache?: boolean } = {}): Promise<Chromium> {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    ...(options.backForwardCache ? { ignoreDefaultArgs: ['--disable-back-forward-cache'] } : {}),
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport });
  await context.route(/^https?:\/\/(?!127\.\d+\.\d+\.\d+[:/])/, (route) => route.abort('blockedbyclient'));
  const violations: string[] = [];
  const consoleErrors: Chromium['consoleErrors'] = [];
  // Reported by the page itself, so a violation Chromium does not print is still seen.
  await context.exposeBinding('reportViolation', (_source, text: string) => void violations.push(text));
  await context.addInitScript({ content: "document.addEventListener('securitypolicyviolation', (e) => reportViolation(`${e.violatedDirective} ${e.blockedURI}`))" });
  const page = await context.newPage();
  page.on('console', (message: ConsoleMessage) => {
    if (message.type() === 'error') consoleErrors.push({ text: message.text(), url: message.location().url });
  });
  page.on('pageerror', (error) => consoleErrors.push({ text: `pageerror: ${error.message}`, url: '' }));
  return { browser, context, page, consoleErrors, violations };
}
