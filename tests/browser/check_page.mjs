// Drives headless chromium over every page examples/backprop_walkthrough wrote, as a reader
// would: steps through the whole forward and backward pass with the arrow keys and the buttons,
// checks that each step shows its entry, adds up the gradients the backward steps show for each
// leaf, clicks every leaf in the graph, and holds both against the gradients tapegrad computed
// (expected_gradients.json). Any console error, page error or request leaving the page's own
// file fails the run. Saves a screenshot of each page.
//   node check_page.mjs CHROMIUM PAGES_DIR EXPECTED_JSON
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const [chromium, pagesDir, expectedPath] = process.argv.slice(2);
const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'));
const problems = [];
const problem = (text) => {
  problems.push(text);
  console.error(`  FAIL ${text}`);
};
const close = (a, b) => Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b));

async function checkPage(browser, file, leaves) {
  console.log(`${file}:`);
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 860 });
  page.on('console', (message) => {
    if (message.type() === 'error') problem(`${file}: console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problem(`${file}: page error: ${error.message}`));
  await page.setRequestInterception(true);
  const url = 'file://' + path.resolve(pagesDir, file);
  page.on('request', (request) => {
    if (request.url() === url || request.url().startsWith('data:')) return request.continue();
    problem(`${file}: the page requested ${request.url()} (it must be self-contained)`);
    return request.abort();
  });
  await page.goto(url, { waitUntil: 'load' });

  const data = await page.evaluate(() => JSON.parse(document.getElementById('tapegrad-data').textContent));
  const total = data.entries.length + data.backward.length;
  const stepState = () =>
    page.evaluate(() => {
      const panel = document.getElementById('step');
      return {
        step: Number(panel.dataset.step),
        kind: panel.dataset.kind,
        entry: Number(panel.dataset.entry),
        heading: panel.querySelector('h2').textContent,
        counter: document.getElementById('counter').textContent,
        sent: [...panel.querySelectorAll('.block.sent')].map((block) => ({
          tensor: Number(block.dataset.tensor),
          values: [...block.querySelectorAll('td[data-v]')].map((td) => Number(td.dataset.v)),
        })),
      };
    });

  // Every step, in order: the forward pass entry by entry, then the backward pass. Most steps
  // by the arrow key, one by the button, and one back and forth.
  const shown = new Map();
  let state = await stepState();
  for (let k = 0; k < total; k++) {
    const forward = k < data.entries.length;
    const entry = forward ? data.entries[k] : data.entries[data.backward[k - data.entries.length].entry];
    if (state.step !== k || state.kind !== (forward ? 'forward' : 'backward') || state.entry !== entry.index) {
      problem(`${file}: step ${k} shows ${state.kind} #${state.entry}, expected #${entry.index}`);
    }
    if (!state.heading.includes(`#${entry.index} ${entry.op}`) || state.counter !== `step ${k + 1} of ${total}`) {
      problem(`${file}: step ${k} reads "${state.heading}" / "${state.counter}"`);
    }
    for (const { tensor, values } of state.sent) {
      if (data.tensors[tensor].kind !== 'leaf') continue;
      const label = data.tensors[tensor].label;
      const sum = shown.get(label) ?? values.map(() => 0);
      shown.set(label, sum.map((v, i) => v + values[i]));
    }
    if (k === total - 1) break;
    if (k === 1) {
      await page.click('#next');
      await page.keyboard.press('ArrowLeft');
      await page.click('#next');
    } else {
      await page.keyboard.press('ArrowRight');
    }
    state = await stepState();
  }
  await page.keyboard.press('ArrowRight');  // past the end: stays on the last step
  if ((await stepState()).step !== total - 1) problem(`${file}: stepping past the end moved`);

  // Each leaf: the sum of what the backward steps showed it receiving, and its gradient when
  // clicked in the graph, against tapegrad's.
  for (const [label, gradient] of Object.entries(leaves)) {
    const tensor = data.tensors.find((t) => t.label === label);
    if (!tensor) {
      problem(`${file}: no tensor labelled ${label} on the page`);
      continue;
    }
    const summed = shown.get(label) ?? [];
    if (summed.length !== gradient.length || !summed.every((v, i) => close(v, gradient[i]))) {
      problem(`${file}: the backward steps sent ${label} [${summed}], tapegrad computed [${gradient}]`);
    }
    await page.click(`#${tensor.id}`);
    const clicked = await page.evaluate(() => {
      const box = document.getElementById('inspector');
      return {
        label: box.dataset.label,
        grad: [...box.querySelectorAll('.grad td[data-v]')].map((td) => Number(td.dataset.v)),
        text: [...box.querySelectorAll('.grad td[data-v]')].map((td) => td.textContent),
      };
    });
    const ok = clicked.label === label && clicked.grad.length === gradient.length &&
      clicked.grad.every((v, i) => close(v, gradient[i])) &&
      clicked.text.every((text, i) => Math.abs(Number(text) - gradient[i]) <= 5e-4 * Math.max(1, Math.abs(gradient[i])));
    if (!ok) problem(`${file}: clicking ${label} shows ${JSON.stringify(clicked)}, tapegrad computed [${gradient}]`);
    else console.log(`  ${label}: gradient [${clicked.text.join(', ')}] as tapegrad computed`);
  }

  // A softmax step shows its explicit Jacobian beside the rule, and they agree.
  const softmax = data.backward.findIndex((b) => data.entries[b.entry].op === 'softmax');
  if (softmax >= 0) {
    await page.keyboard.press('Home');
    for (let k = 0; k < data.entries.length + softmax; k++) await page.keyboard.press('ArrowRight');
    const jacobian = await page.evaluate(() => {
      const block = document.querySelector('#step .jacobian');
      return block && {
        cells: block.querySelectorAll('table.matrix')[1].querySelectorAll('td[data-v]').length,
        diff: Number(block.querySelector('.agree').dataset.diff),
      };
    });
    const n = data.backward[softmax].jacobian?.n;
    if (!jacobian || jacobian.cells !== n * n || !(jacobian.diff <= 1e-12)) {
      problem(`${file}: the softmax step's Jacobian panel reads ${JSON.stringify(jacobian)}`);
    } else {
      console.log(`  softmax: ${n}×${n} Jacobian shown, Jᵀg agrees with the rule to ${jacobian.diff}`);
    }
  }

  // The screenshot: the softmax step if there is one, else a backward step in the middle of the
  // pass, with the first leaf selected.
  await page.keyboard.press('Home');
  const pictured = data.entries.length + (softmax >= 0 ? softmax : Math.floor(data.backward.length / 2));
  for (let k = 0; k < pictured; k++) await page.keyboard.press('ArrowRight');
  const first = data.tensors.find((t) => t.label === Object.keys(leaves)[0]);
  if (first) await page.click(`#${first.id}`);
  const shot = path.join(pagesDir, file.replace(/\.html$/, '.png'));
  await page.screenshot({ path: shot });
  console.log(`  ${total} steps checked; screenshot ${shot}`);
  await page.close();
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tapegrad-chromium-'));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  console.log(`browser: ${await browser.version()}`);
  for (const [file, leaves] of Object.entries(expected)) await checkPage(browser, file, leaves);
} catch (error) {
  problem(`the browser run stopped: ${error.stack ?? error}`);
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
const pages = Object.keys(expected).length;
if (pages === 0) problem('expected_gradients.json names no page');
console.log(problems.length === 0 ? `browser test: all ${pages} pages as expected` : `browser test: ${problems.length} problem(s)`);
process.exit(problems.length === 0 ? 0 : 1);
