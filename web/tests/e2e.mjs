// End to end in headless Chromium (Debian's package, driven by playwright-core):
// a customer in the widget and an agent in the console, two browser contexts, on the
// dev server's stack (scripts/e2e.sh starts it). Screenshots of each step go to
// $E2E_ARTIFACTS (not committed).
//
//   node web/tests/e2e.mjs http://127.0.0.1:PORT

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const base = process.argv[2] ?? 'http://127.0.0.1:3000';
const artifacts = process.env.E2E_ARTIFACTS ?? 'target/e2e-artifacts';
const TIMEOUT = 15_000;
mkdirSync(artifacts, { recursive: true });

const errors = [];
const steps = [];
let shot = 0;

async function step(name, work) {
  const started = Date.now();
  await work();
  steps.push(`${name} (${Date.now() - started} ms)`);
  console.log(`ok - ${name}`);
}

async function snap(page, name) {
  shot += 1;
  await page.screenshot({ path: join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`) });
}

async function token(sub, role, org = 'acme') {
  const res = await fetch(`${base}/_local/token?sub=${sub}&role=${role}&org=${org}`);
  return (await res.json()).token;
}

/** The conversation the widget on `page` holds (it keeps its id in local storage). */
async function conversationOf(page) {
  return page.evaluate(() => {
    for (let i = 0; i < localStorage.length; i += 1) {
      const value = localStorage.getItem(localStorage.key(i));
      if (/^[0-9A-HJKMNP-TV-Z]{26}$/.test(value ?? '')) return value;
    }
    return null;
  });
}

/** A page of a new context whose session holds `token` under `key`. */
async function pageWith(browser, key, tok, viewport) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(([k, t]) => sessionStorage.setItem(k, t), [key, tok]);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => m.type() === 'error' && errors.push(`${key}: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`${key}: ${e.message}`));
  return page;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

try {
  const customerToken = await token('u-500', 'customer');
  const agentToken = await token('a-1', 'agent');
  const strangerToken = await token('a-1', 'agent', 'globex');

  // The customer on a phone-sized screen; their sockets go through a proxy the test
  // can cut.
  const customer = await pageWith(browser, 'chat-demo:customer-token', customerToken, { width: 360, height: 740 });
  const sockets = [];
  let refuse = false;
  await customer.routeWebSocket(/\/\?ticket=/, (ws) => {
    if (refuse) return ws.close({ code: 1011, reason: 'cut by the test' });
    ws.connectToServer();
    sockets.push(ws);
  });
  const agent = await pageWith(browser, 'chat-console:token', agentToken, { width: 1280, height: 800 });

  const widget = customer.locator('#chat-widget');
  const bubbles = widget.locator('.msg');
  const consoleLog = agent.locator('#conversation .log');

  await step('the customer opens the widget and writes', async () => {
    await customer.goto(`${base}/app/dev/widget-demo.html`);
    await widget.getByRole('button', { name: 'Chat with us' }).click();
    await widget.getByLabel('Your message').fill('Hello, my kettle leaks');
    await widget.getByRole('button', { name: 'Send' }).click();
    await bubbles.filter({ hasText: 'Hello, my kettle leaks' }).waitFor();
    await snap(customer, 'customer-writes');
  });

  await step('the agent finds it in the inbox and answers; the customer sees it live', async () => {
    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.getByRole('button', { name: /Hello, my kettle leaks/ }).click();
    await consoleLog.getByText('Hello, my kettle leaks').waitFor();
    await agent.getByLabel('Reply').fill('Sorry to hear that');
    await agent.waitForTimeout(200);
    await agent.getByRole('button', { name: 'Send' }).click();
    await bubbles.filter({ hasText: 'Sorry to hear that' }).waitFor();
    await snap(agent, 'agent-answers');
    await snap(customer, 'customer-sees-answer');
  });

  await step('typing shows in the widget; the customer answers live into the console', async () => {
    await agent.getByLabel('Reply').pressSequentially('Let me check');
    await widget.getByText('Agent is typing…').waitFor();
    await agent.getByLabel('Reply').fill('');
    await widget.getByLabel('Your message').fill('It is the lid');
    await widget.getByLabel('Your message').press('Enter');
    await consoleLog.getByText('It is the lid').waitFor();
  });

  await step('an internal note reaches the agent, never the customer', async () => {
    await agent.getByLabel('Internal note').check();
    await agent.getByLabel('Reply').fill('Refund approved by Dana');
    await agent.getByRole('button', { name: 'Send' }).click();
    await consoleLog.locator('.note', { hasText: 'Refund approved by Dana' }).waitFor();
    await agent.getByLabel('Internal note').uncheck();
    await agent.getByLabel('Reply').fill('A new lid is on its way');
    await agent.getByRole('button', { name: 'Send' }).click();
    await bubbles.filter({ hasText: 'A new lid is on its way' }).waitFor();
    assert.equal(await widget.getByText('Refund approved by Dana').count(), 0, 'the note never reached the customer');
    await snap(agent, 'agent-note');
  });

  await step('the agent asks for an AI reply; it reaches both', async () => {
    await agent.getByRole('button', { name: 'AI reply' }).click();
    await consoleLog.getByText('(AI) About "It is the lid"').waitFor();
    await bubbles.filter({ hasText: '(AI) About "It is the lid"' }).waitFor();
  });

  await step('the inbox filters: assigned to me, pending, open', async () => {
    const rows = agent.locator('#conversations button');
    await agent.getByLabel('Assigned to me').check();
    await rows.filter({ hasText: 'Hello, my kettle leaks' }).waitFor();
    await agent.getByLabel('Pending').check();
    await agent.getByText('Nothing here.').waitFor();
    await agent.getByLabel('Open').check();
    await rows.filter({ hasText: 'Hello, my kettle leaks' }).waitFor();
  });

  await step('the agent resolves; the customer replies; it reopens in the console live', async () => {
    await agent.getByRole('button', { name: 'Resolve' }).click();
    await agent.locator('.room-meta[data-status="resolved"]').waitFor();
    await widget.getByText('marked resolved').waitFor();
    // The widget asks for a rating of the resolution; once is all it takes.
    const rate = widget.getByRole('form', { name: 'Rate this conversation' });
    await rate.getByRole('button', { name: '4 of 5' }).click();
    await rate.getByLabel('Comment (optional)').fill('Quick, thanks');
    await snap(customer, 'rating');
    await rate.getByRole('button', { name: 'Send rating' }).click();
    await widget.getByText('Thank you for your rating.').waitFor();
    const again = await fetch(`${base}/chat/conversations/${await conversationOf(customer)}/rating`, {
      method: 'POST',
      headers: { authorization: `Bearer ${customerToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rating: 1 }),
    });
    assert.equal(again.status, 409, 'one rating per resolution');
    await widget.getByLabel('Your message').fill('One more thing');
    await widget.getByRole('button', { name: 'Send' }).click();
    await agent.locator('.room-meta[data-status="open"]').waitFor();
    await consoleLog.getByText('One more thing').waitFor();
    await snap(agent, 'reopened');
  });

  await step('the customer collapses the widget and gets an unread badge', async () => {
    await widget.getByRole('button', { name: 'Minimise chat' }).click();
    await agent.getByLabel('Reply').fill('Are you still there?');
    await agent.getByRole('button', { name: 'Send' }).click();
    await widget.locator('.badge', { hasText: '1' }).waitFor();
    await snap(customer, 'unread-badge');
    await widget.getByRole('button', { name: /Chat with us/ }).click();
  });

  await step('the socket is cut; messages sent meanwhile arrive once, in order, after reconnect', async () => {
    refuse = true;
    for (const ws of sockets.splice(0)) await ws.close({ code: 1011, reason: 'cut by the test' });
    await widget.getByText('reconnecting…').waitFor();
    for (const n of [1, 2, 3]) {
      await agent.getByLabel('Reply').fill(`While you were away ${n}`);
      await agent.getByRole('button', { name: 'Send' }).click();
      await consoleLog.getByText(`While you were away ${n}`).waitFor();
    }
    refuse = false;
    await bubbles.filter({ hasText: 'While you were away 3' }).waitFor({ timeout: 30_000 });
    const texts = await bubbles.allTextContents();
    const away = texts.filter((t) => t.includes('While you were away'));
    assert.deepEqual(away.map((t) => t.match(/away (\d)/)[1]), ['1', '2', '3'], 'once each, in order');
    const all = texts.map((t) => t.replace(/\d\d:\d\d.*$/, ''));
    assert.equal(new Set(all).size, all.length, `no message twice: ${all}`);
    await snap(customer, 'after-reconnect');
  });

  await step('an image uploaded by the customer shows in both', async () => {
    // A 1×1 PNG.
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
      'base64',
    );
    await widget.locator('input[type=file]').setInputFiles({ name: 'lid.png', mimeType: 'image/png', buffer: png });
    await widget.locator('img[alt="lid.png"]').waitFor();
    await consoleLog.locator('img[alt="lid.png"]').waitFor();
    const loaded = await consoleLog.locator('img[alt="lid.png"]').evaluate((img) => img.complete && img.naturalWidth === 1);
    assert.ok(loaded, 'the agent loads the file from storage');
    await snap(customer, 'image-customer');
    await snap(agent, 'image-agent');
  });

  await step("another tenant's agent sees none of it", async () => {
    const stranger = await pageWith(browser, 'chat-console:token', strangerToken, { width: 1280, height: 800 });
    await stranger.goto(`${base}/app/console.html#inbox`);
    await stranger.getByText('Nothing here.').waitFor();
    const room = await customer.evaluate(() => localStorage.getItem('chat-widget:u-500:conversation'));
    const res = await fetch(`${base}/chat/conversations/${room}/messages`, {
      headers: { authorization: `Bearer ${strangerToken}` },
    });
    assert.equal(res.status, 404, 'the conversation does not exist for another tenant');
    await snap(stranger, 'other-tenant');
  });

  await step('a new conversation appears in the open console live (the inbox feed; nothing polls)', async () => {
    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.locator('#state', { hasText: 'live' }).waitFor();
    await agent.getByRole('button', { name: /Hello, my kettle leaks/ }).waitFor();
    const newcomer = await token('u-501', 'customer');
    const res = await fetch(`${base}/chat/conversations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${newcomer}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Is the blue kettle back in stock', agent_id: 'a-1' }),
    });
    assert.equal(res.status, 201, await res.text());
    // Nothing reloads the list but the feed: no timer, no click.
    await agent.getByRole('button', { name: /Is the blue kettle back in stock/ }).waitFor({ timeout: 5_000 });
    await snap(agent, 'new-conversation-live');
  });

  await step('the agent goes online in the console; a conversation routed to their team waits, then is theirs', async () => {
    const admin = await token('boss', 'admin');
    const call = async (method, path, tok, body) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
        body: body && JSON.stringify(body),
      });
      const text = await res.text();
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
      return JSON.parse(text).data;
    };
    const team = await call('POST', '/teams', admin, { name: 'Kettles' });
    await call('PUT', `/teams/${team.team_id}/agents/a-1`, admin, { capacity: 5 });
    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.locator('#state', { hasText: 'live' }).waitFor();
    await agent.getByLabel('Availability', { exact: true }).selectOption('busy');
    await agent.locator('#workload', { hasText: '/5 open' }).waitFor();
    // Busy: the conversation waits in the team's queue, which the console lists.
    const made = await call('POST', '/chat/conversations', await token('u-502', 'customer'), {
      title: 'My kettle whistles off key', team_id: team.team_id,
    });
    assert.equal(made.routing.outcome, 'queued');
    await agent.getByLabel('Waiting in my teams').check();
    await agent.getByRole('button', { name: /My kettle whistles off key/ }).waitFor();
    // Online: the queue gives it to the agent; it arrives in their inbox by the feed.
    await agent.getByLabel('Availability', { exact: true }).selectOption('online');
    await agent.getByLabel('Assigned to me').check();
    await agent.getByRole('button', { name: /My kettle whistles off key/ }).waitFor({ timeout: 10_000 });
    await snap(agent, 'assigned-from-queue');
  });

  await step('the agent labels a conversation and filters the inbox by the label', async () => {
    const admin = await token('boss', 'admin');
    const res = await fetch(`${base}/labels`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'leaks', color: '#d9534f' }),
    });
    assert.equal(res.status, 201, await res.text());
    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.getByRole('button', { name: /Hello, my kettle leaks/ }).click();
    const pane = agent.locator('#conversation');
    await pane.getByLabel('Add label', { exact: true }).selectOption('leaks');
    await pane.locator('.label-chips li', { hasText: 'leaks' }).waitFor();
    await agent.getByLabel('Filter by label').selectOption('leaks');
    const rows = agent.locator('#conversations button');
    // The unlabelled conversation leaves the list; the labelled one stays.
    await rows.filter({ hasText: 'Is the blue kettle back in stock' }).waitFor({ state: 'detached' });
    await rows.filter({ hasText: 'Hello, my kettle leaks' }).waitFor();
    await snap(agent, 'labels');
    await agent.getByLabel('Filter by label').selectOption('');
  });

  await step('the agent answers with a canned response, its variable filled from the conversation', async () => {
    const call = async (method, path, tok, body) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.text()}`);
    };
    await call('PUT', '/canned-responses/thanks', await token('boss', 'admin'), {
      content: 'Thanks {{customer.name}}, a new lid ships today.',
    });
    await call('PUT', '/profiles/me', customerToken, { username: 'Jo' });
    await agent.getByRole('button', { name: /Hello, my kettle leaks/ }).click();
    const pane = agent.locator('#conversation');
    await pane.getByLabel('Reply').fill('');
    await pane.getByLabel('Reply').pressSequentially('/tha');
    await pane.getByRole('option', { name: /Thanks Jo, a new lid ships today/ }).waitFor();
    await snap(agent, 'canned-response');
    await pane.getByLabel('Reply').press('Enter');
    assert.equal(await pane.getByLabel('Reply').inputValue(), 'Thanks Jo, a new lid ships today.');
    await pane.getByRole('button', { name: 'Send' }).click();
    await consoleLog.getByText('Thanks Jo, a new lid ships today.').waitFor();
  });

  await step('the agent sees who the customer is, the SLA countdown and the last message on the row; searches; works by keyboard', async () => {
    const call = async (method, path, tok, body) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
        body: body && JSON.stringify(body),
      });
      const text = await res.text();
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
      return JSON.parse(text).data;
    };
    const admin = await token('boss', 'admin');
    const sam = await token('u-503', 'customer');
    const team = await call('POST', '/teams', admin, { name: 'Refunds' });
    await call('PATCH', `/teams/${team.team_id}`, admin, { sla: { first_response_minutes: 30, resolution_minutes: 480 } });
    await call('PUT', '/profiles/me', sam, { username: 'Sam Lee', email: 'sam@example.com', phone: '+44 20 7946 0000' });
    await call('POST', '/chat/conversations', sam, { title: 'Which plug fits', agent_id: 'a-1' });
    const made = await call('POST', '/chat/conversations', sam, { title: 'Where is my refund', team_id: team.team_id, agent_id: 'a-1' });
    await call('POST', `/chat/conversations/${made.conversation_id}/messages`, sam, { content: 'Refund for order 991 never came' });
    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.locator('#state', { hasText: 'live' }).waitFor();
    const row = agent.getByRole('button', { name: /Where is my refund/ });
    // The row: the last message, unread, and the first-response clock.
    await row.locator('.preview', { hasText: 'Refund for order 991 never came' }).waitFor();
    await row.locator('.count', { hasText: '1' }).waitFor();
    await row.locator('.clock', { hasText: /first response due in (29|30) min/ }).waitFor();
    await row.click();
    const pane = agent.locator('#conversation');
    await pane.locator('.sla .clock', { hasText: /first response due in/ }).waitFor();
    const customer = agent.locator('#customer');
    await customer.getByRole('heading', { name: 'Sam Lee' }).waitFor();
    await customer.getByText('sam@example.com').waitFor();
    await customer.getByText('+44 20 7946 0000').waitFor();
    await customer.getByRole('link', { name: 'Which plug fits' }).waitFor();
    await snap(agent, 'customer-panel');
    // Keyboard: `?` lists the shortcuts; `r` goes to the reply; Esc leaves it; `e` resolves.
    await agent.evaluate(() => document.activeElement?.blur());
    await agent.keyboard.press('?');
    await agent.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await snap(agent, 'shortcuts');
    await agent.keyboard.press('Escape');
    await agent.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor({ state: 'hidden' });
    await agent.keyboard.press('r');
    assert.equal(await agent.evaluate(() => document.activeElement?.id), 'reply');
    await agent.keyboard.type('On it');
    await agent.keyboard.press('Escape');
    await agent.keyboard.press('e');
    await pane.locator('.room-meta[data-status=resolved]').waitFor();
    await pane.locator('.sla').waitFor({ state: 'hidden' });
    // `/` searches the messages; a hit opens its conversation.
    await agent.keyboard.press('/');
    await agent.keyboard.type('refund 991');
    await agent.keyboard.press('Enter');
    await agent.locator('#conversations').getByRole('button', { name: /Refund for order 991 never came/ }).click();
    await pane.getByRole('heading', { name: 'Where is my refund' }).waitFor();
  });

  await step('notification settings: quiet hours saved and kept, a bad time zone refused, a conversation muted', async () => {
    await agent.goto(`${base}/app/console.html#settings`);
    const form = agent.locator('#notify-form');
    await agent.locator('#notify-form[data-loaded]').waitFor();
    assert.ok(await form.getByLabel('Browser push').isChecked(), 'push is on by default');
    await form.getByLabel('Nothing between').check();
    await form.getByLabel('from').fill('21:30');
    await form.getByLabel('to').fill('06:45');
    await form.getByLabel('time zone').fill('Europe/Berlin');
    await form.getByLabel('Email').uncheck();
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByText('Saved.').waitFor();
    await agent.reload();
    await agent.locator('#notify-form[data-loaded]').waitFor();
    assert.equal(await form.getByLabel('from').inputValue(), '21:30');
    assert.equal(await form.getByLabel('to').inputValue(), '06:45');
    assert.equal(await form.getByLabel('time zone').inputValue(), 'Europe/Berlin');
    assert.ok(!(await form.getByLabel('Email').isChecked()), 'email stays off');
    const seen = errors.length;
    await form.getByLabel('time zone').fill('Mars/Olympus');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.locator('.error', { hasText: 'time_zone' }).waitFor();
    // The browser logs the refused PUT (422) as a failed load: that one was asked for.
    const refused = errors.splice(seen).filter((e) => !e.includes('status of 422'));
    errors.push(...refused);
    await snap(agent, 'notification-settings');

    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.getByRole('button', { name: /Hello, my kettle leaks/ }).click();
    // The conversation is on screen (its head and messages loaded) before acting on it.
    await consoleLog.getByText('Hello, my kettle leaks').waitFor();
    await agent.getByRole('button', { name: 'Mute 8 h' }).click();
    await agent.locator('.room-meta', { hasText: 'muted until' }).waitFor();
    await agent.getByRole('button', { name: 'Unmute' }).click();
    await agent.getByRole('button', { name: 'Mute 8 h' }).waitFor();
  });

  await step('a customer who closed the page hears of the answer by email and by an encrypted push', async () => {
    const sesBase = process.env.E2E_SES;
    const pushBase = process.env.E2E_PUSH;
    assert.ok(sesBase && pushBase, 'scripts/e2e.sh names the stack SES and push service');
    const awayToken = await token('u-502', 'customer');
    const away = await pageWith(browser, 'chat-demo:customer-token', awayToken, { width: 360, height: 740 });
    await away.goto(`${base}/app/dev/widget-demo.html`);
    const awayWidget = away.locator('#chat-widget');
    await awayWidget.getByRole('button', { name: 'Chat with us' }).click();
    await awayWidget.getByLabel('Your message').fill('Do you ship to Oslo?');
    await awayWidget.getByRole('button', { name: 'Send' }).click();
    await awayWidget.locator('.msg', { hasText: 'Do you ship to Oslo?' }).waitFor();
    // The widget's own pane: email me the answer, at this address.
    await awayWidget.getByRole('button', { name: 'Notification settings' }).click();
    const prefs = awayWidget.locator('form.prefs[data-loaded]');
    await prefs.waitFor();
    await prefs.getByLabel('Email me the answer').check();
    await prefs.getByLabel('Email address').fill('oslo@example.com');
    await prefs.getByRole('button', { name: 'Save' }).click();
    await prefs.getByText('Saved.').waitFor();
    await snap(away, 'widget-notification-settings');
    // Headless Chromium's own push service is Google's, unreachable here: the local
    // push service makes the subscription a browser would, and it goes to the API as
    // the widget's button sends it.
    const settings = await (await fetch(`${base}/me/notification-settings`, { headers: { authorization: `Bearer ${awayToken}` } })).json();
    const made = await (await fetch(`${pushBase}/subscribe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userVisibleOnly: 'true', applicationServerKey: settings.data.web_push.vapid_public_key }),
    })).json();
    const sub = { endpoint: made.data.endpoint.replace('//localhost:', '//127.0.0.1:'), keys: made.data.keys };
    const registered = await fetch(`${base}/me/push-subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${awayToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(sub),
    });
    assert.equal(registered.status, 201, await registered.text());
    await away.context().close();

    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.getByRole('button', { name: /Do you ship to Oslo/ }).click();
    await consoleLog.getByText('Do you ship to Oslo?').waitFor();
    await agent.getByLabel('Reply').fill('Yes, within three days');
    await agent.getByRole('button', { name: 'Send' }).click();
    await consoleLog.getByText('Yes, within three days').waitFor();

    const until = Date.now() + 30_000;
    let mail;
    let pushes = [];
    while (Date.now() < until && !(mail && pushes.length)) {
      const store = await (await fetch(`${sesBase}/store`)).json();
      mail = store.emails.find((m) => m.destination.to.includes('oslo@example.com'));
      const got = await (await fetch(`${pushBase}/get-notifications`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ clientHash: made.data.clientHash }),
      })).json();
      pushes = got.data?.messages ?? [];
      if (!(mail && pushes.length)) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(mail, 'a mail reached oslo@example.com');
    assert.match(mail.body.text, /Yes, within three days/);
    assert.ok(mail.headers.some((h) => h.name === 'List-Unsubscribe-Post'), 'one-click unsubscribe');
    assert.equal(pushes.length, 1, 'one push');
    const payload = JSON.parse(pushes[0]);
    assert.equal(payload.body, 'Yes, within three days', 'the push decrypts to the answer');
  });

  await step("an order chat shows in the console with its members' profiles", async () => {
    const call = (method, path, tok, body) =>
      fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => r.json());
    await call('PUT', '/profiles/me', customerToken, { username: 'Jane Buyer', email: 'jane@example.com' });
    const made = await call('POST', '/rooms', customerToken, {
      type: 'agent_to_user', order_id: '1042', agent_id: 'a-1', name: 'Order 1042',
    });
    assert.ok(made.success, JSON.stringify(made));
    await agent.goto(`${base}/app/console.html#orders`);
    await agent.getByRole('button', { name: /Order 1042/ }).click();
    await agent.locator('#order .members').getByText('Jane Buyer · owner · jane@example.com').waitFor();
    await snap(agent, 'order-chat');
  });

  await step('the analytics dashboard draws daily_stats', async () => {
    await agent.goto(`${base}/app/console.html#analytics`);
    await agent.locator('#chart svg').waitFor();
    await snap(agent, 'analytics');
  });

  await step('keyboard: the widget opens and sends without a mouse', async () => {
    await widget.getByRole('button', { name: 'Minimise chat' }).click();
    await widget.getByRole('button', { name: /Chat with us/ }).focus();
    await customer.keyboard.press('Enter');
    await customer.keyboard.type('Typed with the keyboard');
    await customer.keyboard.press('Enter');
    await bubbles.filter({ hasText: 'Typed with the keyboard' }).waitFor();
  });

  await step('both read at 360 px wide without sideways scrolling', async () => {
    await agent.setViewportSize({ width: 360, height: 740 });
    await agent.goto(`${base}/app/console.html#inbox`);
    await agent.getByRole('button', { name: /Hello, my kettle leaks/ }).click();
    await consoleLog.getByText('Typed with the keyboard').waitFor();
    // The customer panel too (it loads after the conversation): the widest the page gets.
    await agent.locator('#customer').waitFor();
    for (const page of [agent, customer]) {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      const wide = await page.evaluate(() =>
        [...document.querySelectorAll('body *')]
          .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}.${el.className}`),
      );
      assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide: ${wide})`);
    }
    await snap(agent, 'console-360');
  });

  await step('the console signs in by authorization code with PKCE; a token or code it did not ask for is ignored', async () => {
    const oidcBase = process.env.E2E_OIDC_BASE;
    assert.ok(oidcBase, 'E2E_OIDC_BASE: the stack that signs in with the OpenID provider');
    const consoleUrl = `${oidcBase}/app/console.html`;
    // A browser of its own per person; the provider's pages are not ours (their
    // stylesheet names a font host this machine cannot reach).
    const person = async (name, { watched = true } = {}) => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      page.setDefaultTimeout(TIMEOUT);
      if (watched) {
        page.on('console', (m) => m.type() === 'error' && m.location().url.startsWith(oidcBase) && errors.push(`${name}: ${m.text()}`));
        page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
      }
      return page;
    };
    const signInAs = async (page, login) => {
      await page.getByRole('link', { name: 'Sign in' }).click();
      await page.locator('input[name=login]').fill(login);
      await page.locator('input[name=password]').fill('any password');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click();
    };

    // The agent signs in: the provider's page, then back with a code the console
    // exchanges (with its verifier) for an ID token the API accepts.
    const agent7 = await person('agent a-7');
    await agent7.goto(consoleUrl);
    await signInAs(agent7, 'a-7');
    await agent7.locator('#who').getByText('Signed in as a-7').waitFor();
    assert.equal(new URL(agent7.url()).search, '', 'the code leaves the address bar');
    const inbox = await agent7.evaluate(async () => {
      const config = await fetch('config.json').then((r) => r.json());
      const res = await fetch(`${config.api}/chat/conversations`, {
        headers: { authorization: `Bearer ${sessionStorage.getItem('chat-console:token')}` },
      });
      return res.status;
    });
    assert.equal(inbox, 200, 'the API takes the ID token');
    const session = () => agent7.evaluate(() => sessionStorage.getItem('chat-console:token'));
    const signedIn = await session();

    // The attacker signs in as themself and keeps what a sign-in yields: their ID
    // token, and a fresh code (the redirect back to the console is stopped).
    const attacker = await person('attacker', { watched: false });
    await attacker.goto(consoleUrl);
    await signInAs(attacker, 'x-1');
    await attacker.locator('#who').getByText('Signed in as x-1').waitFor();
    const attackerToken = await attacker.evaluate(() => sessionStorage.getItem('chat-console:token'));
    await attacker.context().clearCookies();
    await attacker.evaluate(() => sessionStorage.clear());
    let codeUrl = null;
    attacker.on('request', (r) => {
      if (/console\.html\?.*code=/.test(r.url())) codeUrl = r.url();
    });
    // The attacker's console never redeems this code: it stays good for the victim.
    await attacker.route(/\/token$/, (route) => route.abort());
    await attacker.goto(consoleUrl);
    await signInAs(attacker, 'x-1');
    await attacker.locator('#notice').getByText('did not complete').waitFor();
    assert.ok(codeUrl && new URL(codeUrl).searchParams.get('code'), `a code was issued: ${codeUrl}`);

    // Links that push those into the agent's console change nothing.
    for (const pushed of [
      `${consoleUrl}#id_token=${attackerToken}`,
      `${consoleUrl}#access_token=${attackerToken}&token_type=Bearer`,
      `${consoleUrl}?${new URL(codeUrl).search.slice(1)}`,
      `${consoleUrl}?code=${new URL(codeUrl).searchParams.get('code')}`,
    ]) {
      // Arriving from elsewhere (a link on another site): a fresh load of the console.
      await agent7.goto('about:blank');
      await agent7.goto(pushed);
      await agent7.locator('#notice').getByText('was not started here').waitFor();
      await agent7.locator('#who').getByText('Signed in as a-7').waitFor();
      assert.equal(await session(), signedIn, `still the agent's session after ${pushed.slice(0, 80)}`);
      assert.ok(!agent7.url().includes(attackerToken.slice(0, 20)), 'the pushed token leaves the address bar');
    }
    // A victim not signed in is not signed in as the attacker either.
    const victim = await person('victim');
    await victim.goto(`${consoleUrl}#id_token=${attackerToken}`);
    await victim.locator('#signin').waitFor();
    assert.equal(await victim.evaluate(() => sessionStorage.getItem('chat-console:token')), null);
    await snap(agent7, 'console-oidc');
    for (const page of [agent7, attacker, victim]) await page.context().close();
  });

  assert.deepEqual(errors, [], 'no console errors');
  writeFileSync(join(artifacts, 'steps.txt'), `${steps.join('\n')}\n`);
  console.log(`all ${steps.length} steps passed; screenshots in ${artifacts}`);
} finally {
  await browser.close();
}
