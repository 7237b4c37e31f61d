// SPDX-License-Identifier: Apache-2.0
// Loads speedscope files into the real speedscope viewer (the build shipped
// in the speedscope npm package) in headless Chromium, and checks what it
// shows: the file's name in the page title, one entry per thread in the
// profile selector, and the fixture's frames with their times in the
// Sandwich table (the flame graphs are drawn on a canvas; the table is DOM).
// An empty file must import as "empty", not fail.
//
// The expectations come from the file itself (speedscope must read it as
// the format says) plus, with --self NAME=TIME, what the fixture means: the
// self time of one frame of the first thread, which goes wrong if stacks are
// written leaf first or weights in the wrong unit.
//
// usage: node speedscope_viewer.mjs PROFILE.json EMPTY.json [--self NAME=TIME]...
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { fail, requireTool, skip, speedscopeRelease } from './speedscope_tools.mjs';

const args = process.argv.slice(2);
const selfExpected = [];
for (let i = args.indexOf('--self'); i >= 0; i = args.indexOf('--self')) {
  const [name, time] = (args[i + 1] || '').split('=');
  if (!time) fail('--self takes NAME=TIME');
  selfExpected.push({ name, time });
  args.splice(i, 2);
}
const [profilePath, emptyPath] = args;
if (!profilePath || !emptyPath) fail('usage: speedscope_viewer.mjs PROFILE.json EMPTY.json');
const chromiumPath = process.env.PYFLAME_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(chromiumPath)) skip(`no Chromium at ${chromiumPath} (run test/tools/browser.sh)`);
const { chromium } = requireTool('playwright-core');
const release = speedscopeRelease();
let profile;
try {
  profile = JSON.parse(readFileSync(profilePath, 'utf8'));
} catch (e) {
  fail(`${profilePath}: ${e.message}`);
}

const types = {
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.png': 'image/png', '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.wasm': 'application/wasm',
  '.txt': 'text/plain',
};
// The viewer's own files, plus the profiles under /profiles/.
const served = { '/profiles/profile.json': profilePath, '/profiles/empty.json': emptyPath };
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  let file = served[url.pathname];
  if (!file) {
    const name = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
    // Only plain file names of the release folder: nothing else is served.
    if (!name.includes('/') && !name.startsWith('.')) file = path.join(release, name);
  }
  if (!file || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream' });
  res.end(readFileSync(file));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

// Seconds as speedscope's time formatter prints them (below a minute).
function speedscopeTime(s) {
  if (s >= 1) return `${s.toFixed(2)}s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(2)}ms`;
  if (s >= 1e-6) return `${(s * 1e6).toFixed(2)}\u00b5s`;
  return `${(s * 1e9).toFixed(2)}ns`;
}

// Per frame name (the fixture's names are distinct within a thread): total (samples containing it, once per sample) and self
// (samples ending in it) weight of one profile.
function sandwich(p) {
  const out = new Map();
  const entry = (i) => {
    const name = profile.shared.frames[i].name;
    if (!out.has(name)) out.set(name, { total: 0, self: 0 });
    return out.get(name);
  };
  p.samples.forEach((stack, k) => {
    for (const i of new Set(stack)) entry(i).total += p.weights[k];
    if (stack.length > 0) entry(stack[stack.length - 1]).self += p.weights[k];
  });
  return out;
}

const problems = [];
const userDataDir = mkdtempSync(path.join(tmpdir(), 'pyflame-speedscope-'));
let context;
try {
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 900 },
      timeout: 60000,
    });
  } catch (e) {
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
    skip(`Chromium at ${chromiumPath} does not start: ${e.message.split('\n')[0]}`);
  }
  // Nothing may leave 127.0.0.1: such a request is refused and reported.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.protocol === 'data:' || url.protocol === 'blob:') return route.continue();
    problems.push(`request outside 127.0.0.1: ${url.href}`);
    return route.abort();
  });

  const open = async (file) => {
    const page = await context.newPage();
    const dialogs = [];
    page.on('pageerror', (e) => problems.push(`page error loading ${file}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error loading ${file}: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    const url = `${origin}/index.html#profileURL=${encodeURIComponent(`${origin}/profiles/${file}`)}`;
    await page.goto(url, { waitUntil: 'load' });
    return { page, dialogs };
  };

  // --- the fixture profile ---
  const { page, dialogs } = await open('profile.json');
  try {
    const title = `${profile.name} - speedscope`;
    await page.waitForFunction((t) => document.title === t, title, { timeout: 20000 })
      .catch(() => problems.push(`title is not ${JSON.stringify(title)}`));

    // The toolbar names the active profile, the first thread, "(1/N)"; its
    // selector lists every thread with its total weight.
    const threads = profile.profiles.map((p) => p.name);
    const active = page.getByText(`${threads[0]} (1/${threads.length})`, { exact: true });
    await active.waitFor({ timeout: 10000 });
    await active.click();
    for (const p of profile.profiles) {
      const row = page.locator('tr', { has: page.getByText(p.name, { exact: true }) }).first();
      await row.waitFor({ state: 'visible', timeout: 5000 })
        .catch(() => problems.push(`profile selector does not list ${JSON.stringify(p.name)}`));
      const cells = await row.locator('td').allTextContents().catch(() => []);
      if (!cells.includes(speedscopeTime(p.endValue)))
        problems.push(`selector row ${p.name}: expected ${speedscopeTime(p.endValue)}, got ${JSON.stringify(cells)}`);
    }
    await page.keyboard.press('Escape');

    // Sandwich: one row per frame of the thread with the total and self
    // times speedscope computed from our samples and weights.
    await page.getByText('Sandwich').first().click();
    for (let k = 0; k < profile.profiles.length; k++) {
      const p = profile.profiles[k];
      if (k > 0) {
        await page.keyboard.press('n');  // speedscope's key for the next profile
        await page.getByText(`${p.name} (${k + 1}/${threads.length})`, { exact: true }).waitFor({ timeout: 10000 });
      }
      const expected = sandwich(p);
      // The selector's rows are (index, thread, total); the Sandwich table's
      // are (total, self, frame). Wait until it shows this thread's frames.
      const readTable = async () => new Map((await page.$$eval('tr', (trs) => trs
        .filter((tr) => tr.cells.length === 3 && tr.cells[0].tagName === 'TD')
        .map((tr) => [...tr.cells].map((c) => c.textContent.trim()))))
        .filter((r) => !/^\d+$/.test(r[0])).map((r) => [r[2], r]));
      let table = await readTable();
      for (let i = 0; i < 100 && ![...expected.keys()].every((n) => table.has(n)); i++) {
        await page.waitForTimeout(100);
        table = await readTable();
      }
      if (table.size !== expected.size)
        problems.push(`Sandwich of ${p.name}: ${table.size} rows, expected ${expected.size}: ${JSON.stringify([...table.keys()])}`);
      for (const [name, { total, self }] of expected) {
        const row = table.get(name);
        if (!row) {
          problems.push(`Sandwich of ${p.name} has no row ${JSON.stringify(name)}`);
        } else if (!row[0].startsWith(`${speedscopeTime(total)} (`) || !row[1].startsWith(`${speedscopeTime(self)} (`)) {
          problems.push(`Sandwich of ${p.name}, ${name}: expected total ${speedscopeTime(total)} self ${speedscopeTime(self)}, got ${JSON.stringify(row)}`);
        }
      }
      if (k === 0) {
        for (const { name, time } of selfExpected) {
          const row = table.get(name);
          if (!row || !row[1].startsWith(`${time} (`))
            problems.push(`Sandwich of ${p.name}: expected ${name} with self time ${time}, got ${JSON.stringify(row)}`);
        }
      }
      console.log(`${p.name}: ${JSON.stringify([...table.values()])}`);
    }
  } catch (e) {
    problems.push(`fixture profile: ${e.message.split('\n')[0]}`);
  }
  if (dialogs.length) problems.push(`the viewer said: ${dialogs.join(' / ')}`);
  await page.close();

  // --- the empty profile: speedscope imports it and says it is empty ---
  const empty = await open('empty.json');
  for (let i = 0; i < 100 && empty.dialogs.length === 0; i++) await empty.page.waitForTimeout(100);
  if (!empty.dialogs.some((m) => /imported profile, but it's empty/.test(m)))
    problems.push(`empty file: expected speedscope's "empty" notice, got ${JSON.stringify(empty.dialogs)}`);
  await empty.page.close();
} finally {
  if (context) await context.close();
  server.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const p of problems) console.error(`  ${p}`);
  fail(`${problems.length} problem(s) in the speedscope viewer`);
}
console.log(`ok: ${profile.profiles.length} threads and their frames shown by speedscope`);
