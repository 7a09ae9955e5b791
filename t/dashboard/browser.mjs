// The dashboard in headless Chromium, as a user drives it: sign in with an
// API key, see a run appear and finish, open a long run and cancel it,
// retry it, filter by status, see hostile names and outputs as text, see
// the project's dead letters (and not another project's), sign out; a
// wrong key refused, a JWT accepted.
//
// node browser.mjs CONFIG.json, from t/dashboard.t, which installs
// puppeteer-core and reads the result: one JSON line per check on stdout,
// {"check": what, "ok": bool, "detail": ...}, then {"ids": {...}} with the
// executions it started, which the .t checks again through the API.

import fs from 'node:fs';
import puppeteer from 'puppeteer-core';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const WAIT = cfg.wait_ms;
const ids = {};

function check(what, ok, detail) {
    console.log(JSON.stringify({ check: what, ok: !!ok,
                                 detail: detail === undefined ? null
                                                              : detail }));
}

// the gateway's answer to a request with the demo key, from the test itself
async function api(method, path, body, headers) {
    const res = await fetch(cfg.api + path, {
        method,
        headers: { Authorization: 'Bearer ' + cfg.key,
                   'Content-Type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
}

async function runAsync(name) {
    const r = await api('POST', name + '/run', {},
                        { Prefer: 'respond-async' });
    if (r.status !== 202) {
        throw new Error(`run ${name}: ${r.status} ${JSON.stringify(r.json)}`);
    }
    return r.json.execution_id;
}

// the status badge of an execution's row in the list, or null
function rowStatus(page, id) {
    return page.evaluate((id) => {
        for (const tr of document.querySelectorAll('#execution-rows tr')) {
            if (tr.dataset.id === id) {
                return tr.querySelector('.st').textContent;
            }
        }
        return null;
    }, id);
}

async function waitRow(page, id, status) {
    try {
        await page.waitForFunction((id, status) => {
            for (const tr of document.querySelectorAll('#execution-rows tr')) {
                if (tr.dataset.id === id) {
                    return status === null
                        || tr.querySelector('.st').textContent === status;
                }
            }
            return false;
        }, { timeout: WAIT, polling: 100 }, id, status);
        return true;
    } catch (e) {
        return false;
    }
}

async function detailStatus(page) {
    return page.$eval('#d-fields .st', (e) => e.textContent).catch(() => null);
}

async function waitText(page, selector, re) {
    try {
        await page.waitForFunction((sel, src) => {
            const e = document.querySelector(sel);
            return e && new RegExp(src).test(e.textContent);
        }, { timeout: WAIT, polling: 100 }, selector, re.source);
        return true;
    } catch (e) {
        return false;
    }
}

async function openRow(page, id) {
    await page.click(`#execution-rows tr[data-id="${id}"]`);
    return waitText(page, '#d-id', new RegExp('^' + id + '$'));
}

const browser = await puppeteer.launch({
    executablePath: cfg.chromium,
    headless: true,
    userDataDir: cfg.profile,
    // the browser goes when this script does, whatever ends it
    pipe: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
});

setTimeout(() => {
    check('the browser session ended in time', false, cfg.total_ms);
    browser.close().finally(() => process.exit(1));
}, cfg.total_ms).unref();

try {
    const page = await browser.newPage();
    const errors = [];

    await page.setViewport({ width: 1280, height: 1000 });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('dialog', (d) => { errors.push('dialog: ' + d.message());
                               d.dismiss(); });
    await page.evaluateOnNewDocument(() => {
        window.__violations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
            window.__violations.push(e.violatedDirective + ' '
                                     + e.blockedURI);
        });
    });

    const res = await page.goto(cfg.url, { waitUntil: 'load' });
    check('the page loads', res.status() === 200, res.status());

    await page.type('#credential', cfg.key);
    await page.click('#login-form button');
    await page.waitForSelector('#app', { visible: true, timeout: WAIT });
    check('signed in with the API key',
          await page.$eval('#login', (e) => e.hidden));
    check('the credential is named',
          await waitText(page, '#who', /^API key of project demo$/));

    const stored = await page.evaluate(() => ({
        session: sessionStorage.getItem('automations.credential'),
        local: localStorage.length,
        cookie: document.cookie,
    }));
    check('the key is kept in sessionStorage only',
          stored.session === cfg.key && stored.local === 0
              && stored.cookie === '', stored.local);

    check('automations are listed',
          await waitText(page, '#automation-rows', /echo/));

    // a run started through the API appears, and finishes
    ids.echo = await runAsync('echo');
    check('a new run appears in the list', await waitRow(page, ids.echo, null));
    check('and shows success', await waitRow(page, ids.echo, 'success'),
          await rowStatus(page, ids.echo));

    // its detail: output and log
    check('its detail opens', await openRow(page, ids.echo));
    check('the detail shows the output',
          await waitText(page, '#d-output', /"ok": true/));
    check('the cancel button is off for a finished run',
          await page.$eval('#d-cancel', (b) => b.disabled));

    // a long run: running, cancelled from the page
    ids.slow = await runAsync('slow');
    check('the long run appears running',
          await waitRow(page, ids.slow, 'running'),
          await rowStatus(page, ids.slow));
    check('its detail opens', await openRow(page, ids.slow));
    await page.waitForFunction(
        () => !document.querySelector('#d-cancel').disabled,
        { timeout: WAIT });
    await page.click('#d-cancel');
    check('the page says it is cancelled',
          await waitText(page, '#detail-message', /^Cancelled\.$/));
    check('the detail shows cancelled',
          await waitText(page, '#d-fields', /cancelled/),
          await detailStatus(page));
    check('the list shows cancelled',
          await waitRow(page, ids.slow, 'cancelled'));
    const cancelled = await api('GET', `slow/executions/${ids.slow}`);
    check('the API says cancelled too', cancelled.json.status === 'cancelled',
          cancelled.json.status);

    // retried from the page: a new execution, opened
    await page.click('#d-retry');
    check('the page names the retry',
          await waitText(page, '#detail-message',
                         /^Retried as exec_[0-9a-f]{24}\.$/));
    ids.retry = (await page.$eval('#detail-message', (e) => e.textContent))
        .replace(/^Retried as (exec_[0-9a-f]+)\.$/, '$1');
    check('the retry appears in the list',
          await waitRow(page, ids.retry, null));
    check('its detail is open',
          await waitText(page, '#d-id', new RegExp('^' + ids.retry + '$')));
    check('it names the execution retried',
          await waitText(page, '#d-fields', new RegExp(ids.slow)));

    // the status filter
    await page.select('#status-filter', 'cancelled');
    await page.waitForFunction((id) => {
        const rows = [...document.querySelectorAll('#execution-rows tr')];
        return rows.some((tr) => tr.dataset.id === id)
            && rows.every((tr) =>
                tr.querySelector('.st').textContent === 'cancelled');
    }, { timeout: WAIT }, ids.slow).then(
        () => check('the filter keeps cancelled executions only', true),
        () => check('the filter keeps cancelled executions only', false));
    await page.select('#status-filter', '');

    // hostile text from the API is shown as text
    ids.xss = await runAsync('xss');
    check('the hostile run appears', await waitRow(page, ids.xss, null));
    await waitRow(page, ids.xss, 'success');
    await openRow(page, ids.xss);
    check('its output is shown as text',
          await waitText(page, '#d-output', /<img src=x onerror=/));
    check('its log is shown as text',
          await waitText(page, '#d-log', /<script>window.__pwned=2<\/script>/));
    check('the description is shown as text',
          await waitText(page, '#automation-rows',
                         /<img src=x onerror="window.__pwned=3">/));
    const dom = await page.evaluate(() => ({
        img: document.querySelectorAll('img').length,
        scripts: document.querySelectorAll('script').length,
        pwned: window.__pwned === undefined ? null : window.__pwned,
        violations: window.__violations,
    }));
    check('no element was made from the data',
          dom.img === 0 && dom.scripts === 1, dom);
    check('no script of the data ran', dom.pwned === null, dom.pwned);
    check('nothing was refused by the CSP', dom.violations.length === 0,
          dom.violations);

    // dead letters: this project's, not the other's
    check('the dead letter is listed',
          await waitText(page, '#dead-rows', new RegExp(cfg.dead_demo)));
    check("another project's dead letter is not",
          !(await page.$eval('#dead-rows', (e) => e.textContent))
              .includes(cfg.dead_other));

    // the queue
    check('the live workers are shown',
          await waitText(page, '#q-workers', /^1$/));

    check('no error in the page', errors.length === 0, errors);

    await page.screenshot({ path: cfg.screenshot, fullPage: true });
    check('screenshot written', fs.statSync(cfg.screenshot).size > 0);

    await page.click('#signout');
    const after = await page.evaluate(() => ({
        login: !document.querySelector('#login').hidden,
        session: sessionStorage.length,
    }));
    check('signing out forgets the key', after.login && after.session === 0,
          after);

    // a wrong key: refused, nothing kept
    await page.type('#credential', cfg.key.replace(/.$/, (c) =>
        c === '0' ? '1' : '0'));
    await page.click('#login-form button');
    check('a wrong key is refused',
          await waitText(page, '#login-error', /\S/),
          await page.$eval('#login-error', (e) => e.textContent));
    check('and not kept', await page.evaluate(() => sessionStorage.length)
          === 0);

    // a JWT works the same way
    await page.$eval('#credential', (e) => { e.value = ''; });
    await page.type('#credential', cfg.jwt);
    await page.click('#login-form button');
    check('signed in with a JWT',
          await waitText(page, '#who', /^JWT$/));
    check('which sees the executions',
          await waitRow(page, ids.echo, 'success'));
    check('and the dead letters',
          await waitText(page, '#dead-rows', new RegExp(cfg.dead_demo)));
} catch (e) {
    check('the browser session ran to its end', false, String(e.stack || e));
} finally {
    await browser.close();
}

console.log(JSON.stringify({ ids }));
