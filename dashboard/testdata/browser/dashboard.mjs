// Drives the troupe dashboard in Debian's chromium through playwright-core,
// for TestBrowser in ../../browser_test.go, which starts the app and passes:
//
//   DASHBOARD_URL   the dashboard's URL with #token=…
//   APP_URL         the app's base URL, to place orders
//   EXPECT          JSON: {services, topics, subscriptions, failed, deadLettered, subscription}
//   SCREENSHOT_DIR  where to write dashboard.png and timeline.png; empty: none
//   CHROMIUM        the browser to run (default /usr/bin/chromium)
//
// It prints one line per check and exits non-zero at the first that fails.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.DASHBOARD_URL;
const appURL = process.env.APP_URL;
const expect = JSON.parse(process.env.EXPECT || '{}');
const shots = process.env.SCREENSHOT_DIR || '';
const timeout = 30000;

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
  console.log('ok: ' + msg);
}

const profile = mkdtempSync(join(tmpdir(), 'troupe-dashboard-chromium-'));
// A fresh profile each run; playwright passes it as --user-data-dir.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 900 },
});
let failed = false;
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(timeout);
  let errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.request().method()} ${r.url()}: ${r.status()}`); });

  // 1. The graph shows every service, topic and subscription, and draws the
  // compensation apart from the success path.
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]');
  check(!(await page.url()).includes('token='), 'the token leaves the address bar');
  for (const sv of expect.services) {
    await page.waitForSelector(`#graph-svg [data-id="service:${sv}"]`);
  }
  check(true, `graph shows the ${expect.services.length} services ${expect.services.join(', ')}`);
  for (const tp of expect.topics) {
    await page.waitForSelector(`#graph-svg [data-id="topic:${tp}"]`);
  }
  check(true, `graph shows the ${expect.topics.length} topics`);
  const subs = await page.$$eval('#graph-svg g.node.subscription', (els) => els.map((e) => e.dataset.name).sort());
  check(JSON.stringify(subs) === JSON.stringify([...expect.subscriptions].sort()), `graph shows the subscriptions ${subs.join(', ')}`);
  const dlqs = await page.$$eval('#graph-svg g.node.deadletters', (els) => els.length);
  check(dlqs === expect.subscriptions.length, `graph shows ${dlqs} dead-letter stores`);
  const comp = await page.$$eval('#graph-svg path.edge.compensates', (els) => els.map((e) => e.dataset.edge));
  check(comp.length === 1 && comp[0].startsWith('subscription:payment.charge>topic:payment_failed'), 'the compensation edge is drawn as such');
  const dash = await page.$eval('#graph-svg path.edge.compensates', (e) => getComputedStyle(e).strokeDasharray);
  const solid = await page.$eval('#graph-svg path.edge.delivers', (e) => getComputedStyle(e).strokeDasharray);
  check(dash !== 'none' && solid === 'none', `compensation dashed (${dash}), success path solid`);
  // Rates and errors reach the edges.
  await page.waitForFunction(() => [...document.querySelectorAll('#graph-svg .edge-label.delivers text')].some((t) => /\/s · \d+ · \d+ failed/.test(t.textContent)));
  check(true, 'a delivers edge shows its rate, count and failures');
  await page.waitForFunction(() => [...document.querySelectorAll('#graph-svg .node.deadletters text')].some((t) => t.textContent.startsWith('1 dead letter')));
  check(true, 'the dead-letter store of the failing subscription counts 1');
  if (shots) {
    await page.screenshot({ path: join(shots, 'dashboard.png') });
    console.log('wrote ' + join(shots, 'dashboard.png'));
  }

  // 2. The live event stream shows an event as it is published, and its
  // filter keeps only one transaction.
  await page.click('#tabs a[data-tab="events"]');
  await page.waitForSelector('#event-state[data-ready="1"]');
  await page.fill('#event-correlation', 'order-live');
  await page.click('#event-filter button[type="submit"]');
  await page.waitForSelector('#event-state[data-ready="1"]');
  await page.evaluate(async (u) => {
    for (const o of [{ id: 'other', amount: 1 }, { id: 'live', amount: 2 }]) {
      const r = await fetch(u + '/orders', { method: 'POST', body: JSON.stringify(o) });
      if (r.status !== 202) throw new Error('POST /orders: ' + r.status);
    }
  }, appURL);
  await page.waitForSelector('#event-table tr.event-row[data-correlation="order-live"][data-type="shipped.v1"]');
  const corrs = await page.$$eval('#event-table tr.event-row', (els) => [...new Set(els.map((e) => e.dataset.correlation))]);
  check(corrs.length === 1 && corrs[0] === 'order-live', `the filtered stream shows only order-live (${corrs})`);

  // 3. The compensated transaction's timeline shows the compensation.
  await page.click('#tabs a[data-tab="timeline"]');
  await page.selectOption('#tx-status', 'compensated');
  await page.click(`#tx-list a[data-correlation="${expect.failed}"]`);
  await page.waitForSelector('#timeline .tl-row[data-outcome="compensated"]');
  const outcomes = await page.$$eval('#timeline .tl-row', (els) => els.map((e) => e.dataset.outcome));
  check(outcomes.includes('compensated') && outcomes.filter((o) => o === 'handled').length >= 2, `timeline of ${expect.failed}: ${outcomes.join(', ')}`);

  // 4. The dead-lettered transaction shows its retry and its dead letter.
  await page.selectOption('#tx-status', 'dead-lettered');
  await page.click(`#tx-list a[data-correlation="${expect.deadLettered}"]`);
  await page.waitForSelector('#timeline .tl-row[data-outcome="dead-lettered"]');
  const dlOutcomes = await page.$$eval('#timeline .tl-row', (els) => els.map((e) => e.dataset.outcome));
  check(dlOutcomes.includes('retried') && dlOutcomes.includes('dead-lettered'), `timeline of ${expect.deadLettered}: ${dlOutcomes.join(', ')}`);

  // 5. Replay the dead letter from its list; it goes, and the handler
  // succeeds this time.
  await page.click('#timeline .tl-row[data-outcome="dead-lettered"] .err a');
  const row = `#deadletters tr[data-subscription="${expect.subscription}"]`;
  await page.waitForSelector(row);
  const rows = await page.$$eval(row, (els) => els.length);
  check(rows === 1, `one dead letter listed for ${expect.subscription}`);
  const errText = await page.$eval(`${row} .error`, (e) => e.textContent);
  check(errText.includes('fragile'), `the dead letter shows its error: ${errText}`);
  // With a wrong token the server answers 403 and the page asks for the
  // right one.
  await page.evaluate(() => sessionStorage.setItem('troupe-dashboard-token', 'wrong'));
  const token = decodeURIComponent(url.match(/#token=([^&]+)/)[1]);
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(token); });
  const before = errors.length;
  await page.click(`${row} button[data-action="replay"]`);
  await page.waitForSelector('#toast:not([hidden])');
  const toastText = await page.$eval('#toast', (e) => e.textContent);
  check(toastText.startsWith('Replayed'), `replay answered: ${toastText}`);
  check(asked.includes('Admin token'), `the page asked for the token after a 403: ${asked}`);
  // The refused request is logged by the browser as a failed load: expected.
  errors = [...errors.slice(0, before), ...errors.slice(before).filter((e) => !/403/.test(e))];
  await page.waitForSelector(row, { state: 'detached' });
  check(true, 'the replayed dead letter left the list');

  await page.goto(url.replace(/#.*$/, '') + '#/timeline/' + encodeURIComponent(expect.deadLettered));
  await page.waitForSelector('body[data-ready="1"]');
  const deadline = Date.now() + timeout;
  for (;;) {
    await page.waitForSelector('#timeline .tl-row');
    const replayed = await page.$$eval('#timeline .tl-row[data-outcome="handled"] .who', (els) => els.some((e) => e.textContent.includes('replay 1')));
    const notified = await page.$$eval('#timeline .tl-row .what', (els) => els.some((e) => e.textContent.includes('notification.notify')));
    if (replayed && notified) break;
    if (Date.now() > deadline) throw new Error('the replayed handling did not show in the timeline');
    await page.waitForTimeout(300); // the journal is written a moment after each step
    await page.click('#timeline .tl-head button');
  }
  check(true, 'the timeline shows the replay handled and the rest of the transaction');
  await page.selectOption('#tx-status', '');
  await page.waitForSelector(`#tx-list a.active[data-correlation="${expect.deadLettered}"]`);
  if (shots) {
    await page.screenshot({ path: join(shots, 'timeline.png') });
    console.log('wrote ' + join(shots, 'timeline.png'));
  }
  // 6. An app's own panel has a tab that shows its page.
  await page.click('#tabs a[data-tab="panel:mail"]');
  const frame = page.frameLocator('#panel-frame');
  const sink = await frame.locator('#sink').textContent();
  check(sink === 'no mail sent to /', `the panel's tab shows its page: ${sink}`);

  check(errors.length === 0, 'no errors in the page' + (errors.length ? ': ' + errors.join('; ') : ''));
} catch (e) {
  failed = true;
  console.error(String(e && e.stack || e));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
