// A real `memsilo serve` on a free loopback port over a fresh data directory, and Debian's
// chromium driven by playwright-core (never a downloaded browser).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '../..');

export function binary() {
  if (process.env.MEMSILO_BIN) return process.env.MEMSILO_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
  return join(target, 'debug', 'memsilo');
}

/** Starts the server; resolves with { url, adminKey, stop }. */
export async function startServer() {
  const data = mkdtempSync(join(tmpdir(), 'memsilo-console-'));
  const adminKey = `console-test-admin-${Math.random().toString(36).slice(2)}${Date.now()}`;
  const child = spawn(binary(), ['serve', '--data', data, '--listen', '127.0.0.1:0', '--log-level', 'warn'], {
    env: { ...process.env, MEMSILO_ADMIN_KEY: adminKey },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start:\n${log}`)), 30_000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      // The whole line: stderr may arrive cut anywhere, e.g. after "http://127".
      const m = /listening on (http:\/\/\S+)\r?\n/.exec(log);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited with ${code}:\n${log}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((ok) => setTimeout(ok, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(data, { recursive: true, force: true });
  };
  return { url, adminKey, stop, log: () => log };
}

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Headless chromium with a fresh profile; resolves with { context, close }. */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'memsilo-console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
    colorScheme: 'light',
  });
  context.setDefaultTimeout(15_000);
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's WCAG 2.1 A/AA and best-practice rules on the page as it is; the violations. */
export async function axe(page) {
  const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }),
  );
  return result.violations.map((v) => ({
    rule: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
  }));
}
