// SPDX-License-Identifier: Apache-2.0
// The SVG flame graph in headless Chromium: it renders, a real mouse click
// zooms and "Reset zoom" restores, "Search" highlights and reports the
// matched share, hovering shows details, and nothing is fetched.
//
//   node flamegraph_test.mjs FLAMEGRAPH.svg FLAMEGRAPH_THREADS.svg FLAMEGRAPH_EMPTY.svg
//
// The first two must be the writer's output for test/unit/profile_fixture.h
// (without and with thread roots): the expectations below are its numbers.
// The third is the output for a profile without samples.
// Tools come from test/tools/browser.sh; without them it prints
// "SKIP: <reason>" and exits 77.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const chromiumPath = '/usr/bin/chromium';
const toolsDir = process.env.PYFLAME_TOOLS || '/var/cache/pyflame/tools';

function skip(reason) {
  console.log(`SKIP: ${reason}`);
  process.exit(77);
}

const [plainSvg, threadsSvg, emptySvg] = process.argv.slice(2);
if (!emptySvg) {
  console.error('usage: flamegraph_test.mjs FLAMEGRAPH.svg FLAMEGRAPH_THREADS.svg FLAMEGRAPH_EMPTY.svg');
  process.exit(2);
}
if (!existsSync(chromiumPath)) skip(`no ${chromiumPath} (run test/tools/browser.sh)`);
let chromium;
try {
  const require = createRequire(path.join(toolsDir, 'node_modules', 'package.json'));
  ({ chromium } = require('playwright-core'));
} catch (e) {
  skip(`npm package playwright-core is not in ${toolsDir}/node_modules (run test/tools/browser.sh): ${e.code || e.message}`);
}

const fullWidth = 1180;  // the writer's frame area: 1200 less two 10px margins
const frame = (func, depth) => `g.frame[data-f="${func}"][data-d="${depth}"]`;

// Reads a frame's drawn state in the page.
async function state(page, selector) {
  return page.$eval(selector, (g) => {
    const rect = g.querySelector('rect');
    return {
      x: Number(rect.getAttribute('x')),
      width: Number(rect.getAttribute('width')),
      visible: getComputedStyle(g).display !== 'none',
      boxWidth: rect.getBoundingClientRect().width,
      label: g.querySelector('text').textContent,
      fill: getComputedStyle(rect).fill,
      match: g.classList.contains('match'),
    };
  });
}

const text = (page, selector) => page.$eval(selector, (e) => e.textContent);
const controlVisible = (page, id) =>
  page.$eval(`#${id}`, (e) => getComputedStyle(e).display !== 'none');

function near(actual, expected, what) {
  assert.ok(Math.abs(actual - expected) < 0.02, `${what}: ${actual}, expected ${expected}`);
}

async function open(context, file) {
  const page = await context.newPage();
  const url = pathToFileURL(path.resolve(file)).href;
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('request', (r) => { if (r.url() !== url) problems.push(`fetched ${r.url()}`); });
  await page.goto(url);
  // An XML error would make Chromium show a <parsererror> instead of the SVG.
  assert.equal(await page.evaluate(() => document.documentElement.localName), 'svg');
  assert.equal(await page.$$eval('parsererror', (e) => e.length), 0, 'the SVG does not parse');
  assert.equal(await page.evaluate(() => typeof window.pyflame?.zoom), 'function');
  return { page, problems };
}

async function testPlain(context) {
  const { page, problems } = await open(context, plainSvg);
  assert.equal(await page.$$eval('g.frame', (g) => g.length), 9);
  const root = await state(page, frame('all', 0));
  near(root.x, 10, 'root x');
  near(root.width, fullWidth, 'root width');
  near(root.boxWidth, fullWidth, 'root on-screen width');
  assert.equal(await text(page, '#subtitle'), 'python3 app.py --name "x" | Python 3.11.7 | 100 samples | 1.50 s');
  // Escaped names arrive intact.
  assert.equal(await text(page, 'g.frame[data-f^="fn;with"] title'),
               'fn;with"quotes"&<tags> (/srv/dir ñ/関.py:3)\n5 samples, 5.00%');
  assert.equal(await controlVisible(page, 'reset'), false);

  // Hover: details line (and the native tooltip's <title>).
  await page.hover(`${frame('hot', 3)} rect`);
  assert.equal(await text(page, '#details'), 'hot (/srv/lib/hot.py:7) (50 samples, 50.00%)');
  assert.equal(await text(page, `${frame('hot', 3)} title`), 'hot (/srv/lib/hot.py:7)\n50 samples, 50.00%');

  // A real click on App.run: it fills the width, its ancestors stay full
  // width, its sibling and the other branch are hidden, its children scale.
  await page.click(`${frame('App.run', 2)} rect`);
  const run = await state(page, frame('App.run', 2));
  near(run.x, 10, 'zoomed x');
  near(run.width, fullWidth, 'zoomed width');
  near(run.boxWidth, fullWidth, 'zoomed on-screen width');
  assert.equal(run.label, 'App.run (/srv/app.py:12)');
  for (const [selector, what] of [[frame('all', 0), 'root'], [frame('<module>', 1), 'parent']]) {
    const s = await state(page, selector);
    assert.equal(s.visible, true, `${what} visible while zoomed`);
    near(s.width, fullWidth, `${what} width while zoomed`);
  }
  assert.equal((await state(page, 'g.frame[data-f^="fn;with"]')).visible, false, 'sibling hidden');
  assert.equal((await state(page, frame('loop', 1))).visible, false, 'other branch hidden');
  assert.equal((await state(page, frame('hot', 2))).visible, false, 'other thread\'s hot hidden');
  const hot = await state(page, frame('hot', 3));
  near(hot.width, 50 / 82 * fullWidth, 'child width while zoomed');
  near(hot.x, 10 + 2 / 82 * fullWidth, 'child x while zoomed');
  const warm = await state(page, frame('warm', 3));
  near(warm.x, 10 + 52 / 82 * fullWidth, 'second child x while zoomed');
  assert.equal(await controlVisible(page, 'reset'), true);

  // Deeper zoom by clicking a child, then a real click on "Reset zoom".
  await page.click(`${frame('warm', 3)} rect`);
  near((await state(page, frame('warm', 3))).width, fullWidth, 'warm zoomed');
  assert.equal((await state(page, frame('hot', 3))).visible, false, 'hot hidden beside warm');
  await page.click('#reset');
  const restored = await state(page, 'g.frame[data-f^="fn;with"]');
  assert.equal(restored.visible, true);
  near(restored.x, 977.6, 'restored x');
  near(restored.width, 59, 'restored width');
  assert.equal(restored.label, 'fn;wi..');
  near((await state(page, frame('App.run', 2))).width, 967.6, 'restored App.run');
  near((await state(page, frame('hot', 2))).width, 118, 'restored worker hot');
  assert.equal(await controlVisible(page, 'reset'), false);

  // A real click on "Search", answering its prompt with "hot".
  page.once('dialog', (dialog) => dialog.accept('hot'));
  await page.click('#search');
  assert.equal(await text(page, '#matched'), 'Matched: 60.0%');
  for (const [selector, matched] of [[frame('hot', 3), true], [frame('hot', 2), true],
                                     [frame('warm', 3), false], [frame('App.run', 2), false]]) {
    const s = await state(page, selector);
    assert.equal(s.match, matched, `${selector} matched`);
    assert.equal(s.fill === 'rgb(230, 0, 230)', matched, `${selector} fill ${s.fill}`);
  }
  // Nested matches count once; a term that is no regular expression is text.
  const search = (term) => page.evaluate((t) => window.pyflame.search(t), term);
  near(await search('run|module'), 87, 'run|module');
  assert.equal(await text(page, '#matched'), 'Matched: 87.0%');
  near(await search('.'), 100, 'everything');
  near(await search('^(hot|warm)$'), 90, 'hot or warm');
  near(await search('&<tags'), 5, 'escaped name');
  near(await search('<module'), 87, 'a regular expression');
  near(await search('(un'), 0, 'not a regular expression, no substring');
  near(await search('[xyz'), 0, 'unclosed class');
  near(await search('<unknown'), 2, 'unknown frames');
  // Cancelling the prompt changes nothing; an empty answer clears.
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.click('#search');
  assert.equal(await text(page, '#matched'), 'Matched: 2.0%');
  page.once('dialog', (dialog) => dialog.accept(''));
  await page.click('#search');
  assert.equal(await text(page, '#matched'), '');
  assert.equal(await page.$$eval('g.frame.match', (g) => g.length), 0);

  // The same through the exposed functions.
  assert.equal(await page.evaluate(() => window.pyflame.zoom('no-such-frame')), false);
  const runId = await page.$eval(frame('App.run', 2), (g) => g.id);
  assert.equal(await page.evaluate((id) => window.pyflame.zoom(id), runId), true);
  near((await state(page, frame('App.run', 2))).width, fullWidth, 'zoom()');
  await page.evaluate(() => window.pyflame.reset());
  near((await state(page, frame('App.run', 2))).width, 967.6, 'reset()');

  assert.deepEqual(problems, []);
  await page.close();
}

async function testThreads(context) {
  const { page, problems } = await open(context, threadsSvg);
  const python3 = frame("thread 'python3' (tid 100)", 1);
  const worker = frame("thread 'worker <1>' (tid 101)", 1);
  near((await state(page, frame('all', 0))).width, fullWidth, 'root width');
  near((await state(page, python3)).width, 0.87 * fullWidth, 'main thread width');
  assert.notEqual((await state(page, python3)).fill, (await state(page, frame('<module>', 2))).fill,
                  'threads have their own colour');
  await page.hover(`${worker} rect`);
  assert.equal(await text(page, '#details'), "thread 'worker <1>' (tid 101) (13 samples, 13.00%)");
  await page.click(`${worker} rect`);
  near((await state(page, worker)).width, fullWidth, 'zoomed thread');
  near((await state(page, frame('hot', 3))).width, 10 / 13 * fullWidth, 'worker hot');
  assert.equal((await state(page, python3)).visible, false, 'other thread hidden');
  assert.equal((await state(page, frame('hot', 4))).visible, false, 'main thread hot hidden');
  // Search counts all samples, zoomed or not.
  near(await page.evaluate(() => window.pyflame.search('hot')), 60, 'hot');
  near(await page.evaluate(() => window.pyflame.search('^thread')), 100, 'threads');
  near(await page.evaluate(() => window.pyflame.search('(tid 10')), 100, 'text, not a regular expression');
  await page.click('#reset');
  near((await state(page, python3)).width, 0.87 * fullWidth, 'restored main thread');
  assert.deepEqual(problems, []);
  await page.close();
}

async function testEmpty(context) {
  const { page, problems } = await open(context, emptySvg);
  assert.equal(await text(page, '#empty'), 'no samples');
  assert.equal(await page.$$eval('g.frame', (g) => g.length), 0);
  assert.equal(await page.evaluate(() => window.pyflame.search('x')), 0);
  assert.equal(await text(page, '#matched'), 'Matched: 0.0%');
  await page.evaluate(() => window.pyflame.reset());
  assert.deepEqual(problems, []);
  await page.close();
}

const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'pyflame-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(15000);
  await testPlain(context);
  await testThreads(context);
  await testEmpty(context);
  console.log('PASS: flame graph renders, zooms, resets, searches and shows details in Chromium');
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
