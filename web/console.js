// The agent console: the inbox with filters and live updates, a conversation view
// (internal notes, assign, resolve, snooze, AI reply), the marketplace's order chats
// with their members' profiles, and the analytics dashboard. Only the public API.

import { Api, Feed, escapeHtml, clock, showAttachment, subjectOf } from './lib/chat.js';

const $ = (selector, root = document) => root.querySelector(selector);
const config = await fetch('config.json').then((r) => r.json());
const SESSION = 'chat-console:token';
const LOGIN = 'chat-console:login';
const token = await signedIn();
const me = subjectOf(token);
const api = new Api({ api: config.api, token });
const feed = new Feed(api, config.ws);
let view = null; // the RoomView on screen
let refreshTimer = null;

if (!token) signIn();
else start();

function signIn() {
  $('#signin').hidden = false;
  const link = $('#signin-link');
  if (config.local) {
    $('#signin-text').textContent = 'The local stack mints tokens for any user and role.';
    link.href = 'dev/token.html';
    link.textContent = 'Mint a local token';
  } else {
    $('#signin-text').textContent = 'Sign in with your organisation.';
    link.addEventListener('click', (e) => {
      e.preventDefault();
      startLogin().catch(showError);
    });
  }
}

/** The identity provider's sign-in, by authorization code with PKCE: a fresh `state`
 * and code verifier are kept in this tab's session until the provider sends the
 * browser back; only a code that comes back with that state is exchanged. */
async function startLogin() {
  const auth = config.auth;
  const state = randomText();
  const verifier = randomText();
  sessionStorage.setItem(LOGIN, JSON.stringify({ state, verifier }));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: auth.client_id,
    redirect_uri: redirectUri(),
    scope: auth.scope ?? 'openid',
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
  });
  location.assign(`${auth.authorize_url}?${query}`);
}

/** The session's token: the one this tab holds, or the one a sign-in this tab started
 * has just brought back. A token or a code in the URL that this tab did not ask for
 * (someone else's sign-in, pushed by a link) is dropped, never used. */
async function signedIn() {
  const query = new URLSearchParams(location.search);
  const returned = ['code', 'state', 'error'].some((name) => query.has(name));
  const pushed = /(^#|&)(id_token|access_token)=/.test(location.hash);
  if (returned || pushed) history.replaceState(null, '', `${location.pathname}#inbox`);
  if (pushed) notice('A sign-in that was not started here was ignored.');
  if (returned && !config.local) {
    const pending = JSON.parse(sessionStorage.getItem(LOGIN) ?? 'null');
    sessionStorage.removeItem(LOGIN);
    const code = query.get('code');
    if (code && pending && query.get('state') === pending.state) {
      const fresh = await exchange(code, pending.verifier);
      if (fresh) sessionStorage.setItem(SESSION, fresh);
    } else {
      notice('A sign-in that was not started here was ignored.');
    }
  }
  return sessionStorage.getItem(SESSION);
}

async function exchange(code, verifier) {
  const res = await fetch(config.auth.token_url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: config.auth.client_id,
      code,
      redirect_uri: redirectUri(),
      code_verifier: verifier,
    }),
  }).catch(() => null);
  if (!res?.ok) {
    notice('The sign-in did not complete; sign in again.');
    return null;
  }
  return (await res.json()).id_token ?? null;
}

function redirectUri() {
  return `${location.origin}${location.pathname}`;
}

function randomText() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function notice(text) {
  const box = $('#notice');
  box.textContent = text;
  box.hidden = false;
}

function start() {
  $('#who').textContent = `Signed in as ${me}`;
  feed.addEventListener('status', (e) => ($('#state').textContent = e.detail === 'live' ? 'live' : `${e.detail}…`));
  feed.addEventListener('change', (e) => {
    if (view?.roomId === e.detail.roomId) view.change(e.detail.event);
    scheduleRefresh();
  });
  feed.addEventListener('typing', (e) => view?.typing(e.detail));
  // The inbox feed: a conversation assigned or added to the agent, one that went, a
  // row that moved — the list reloads (no polling).
  feed.addEventListener('inbox', scheduleRefresh);
  feed.addEventListener('reload', (e) => view?.roomId === e.detail.roomId && view.load());
  feed.connect();
  $('#refresh').addEventListener('click', () => loadInbox().catch(showError));
  for (const radio of document.querySelectorAll('input[name=filter]')) {
    radio.addEventListener('change', () => loadInbox().catch(showError));
  }
  window.addEventListener('hashchange', show);
  $('#notify-form').addEventListener('submit', (e) => {
    e.preventDefault();
    saveSettings().catch((err) => showFormError(err));
  });
  $('#label-filter').addEventListener('change', () => loadInbox().catch(showError));
  $('#search').addEventListener('submit', (e) => {
    e.preventDefault();
    search($('#search-q').value).catch(showError);
  });
  $('#shortcuts').addEventListener('click', () => $('#keys').showModal());
  document.addEventListener('keydown', shortcut);
  loadLabels().catch(() => {});
  $('#availability').addEventListener('change', (e) => setAvailability(e.target.value).catch(showError));
  loadWorkload().catch(() => {});
  $('#enable-push').addEventListener('click', () => enablePush().catch((err) => ($('#push-state').textContent = `Not enabled: ${err.message}`)));
  show();
}

function show() {
  const section = (location.hash || '#inbox').slice(1).split('/')[0];
  for (const name of ['inbox', 'orders', 'analytics', 'settings']) {
    $(`#${name}`).hidden = name !== section;
    $(`nav a[data-section=${name}]`).toggleAttribute('aria-current', name === section);
    if (name === section) $(`nav a[data-section=${name}]`).setAttribute('aria-current', 'page');
  }
  const load = { inbox: loadInbox, orders: loadOrders, analytics: loadAnalytics, settings: loadSettings }[section];
  load?.().catch(showError);
}

/** A failed load, said where the user looks. */
function showError(err) {
  const section = $('main section:not([hidden])');
  let box = $('.load-error', section);
  if (!box) {
    box = document.createElement('p');
    box.className = 'error load-error';
    box.setAttribute('role', 'alert');
    section.prepend(box);
  }
  box.textContent = `Could not load: ${err.message}`;
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => !$('#inbox').hidden && loadInbox().catch(showError), 300);
}

/** The console's keyboard shortcuts (listed on the `?` overlay): outside text
 * fields only, so typing is never taken for a command. */
function shortcut(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = e.target.closest?.('input, textarea, select, [contenteditable]');
  if (e.key === 'Escape' && typing) {
    e.target.blur();
    return;
  }
  if (typing || $('#keys').open || $('#inbox').hidden) return;
  const act = {
    '?': () => $('#keys').showModal(),
    '/': () => $('#search-q').focus(),
    j: () => step(1),
    k: () => step(-1),
    r: () => view?.compose(false),
    n: () => view?.compose(true),
    a: () => view?.act('assign'),
    e: () => view?.act('resolve'),
    s: () => view?.act('snooze'),
    l: () => view?.el.choice.focus(),
  }[e.key];
  if (!act) return;
  e.preventDefault();
  act();
}

/** Opens the next (or previous) conversation in the list. */
function step(by) {
  const buttons = [...document.querySelectorAll('#conversations button[data-room]')];
  if (!buttons.length) return;
  const at = buttons.findIndex((b) => b.getAttribute('aria-current') === 'true');
  const next = buttons[Math.min(buttons.length - 1, Math.max(0, at < 0 ? 0 : at + by))];
  next.click();
  next.focus();
}

/** The agent's availability and workload (docs/support.md): online takes new
 * conversations from their teams, busy and offline do not. */
async function loadWorkload() {
  showWorkload(await api.get('/agents/me'));
}

async function setAvailability(availability) {
  showWorkload(await api.put('/agents/me/availability', { availability }));
}

function showWorkload(load) {
  $('#availability').value = load.availability;
  $('#workload').textContent = load.capacity ? `${load.open_conversations}/${load.capacity} open` : `${load.open_conversations} open`;
  $('#workload').dataset.teams = (load.team_ids ?? []).join(',');
}

/** The tenant's labels (docs/support.md), for the inbox filter and the conversation
 * view's "Add label". */
let labels = [];
async function loadLabels() {
  labels = (await api.get('/labels')).labels.map((l) => l.name);
  const filter = $('#label-filter');
  filter.replaceChildren(new Option('any', ''), ...labels.map((name) => new Option(name, name)));
  // A conversation opened before the list came offers them now.
  if (view?.support && view.room) view.head();
}

/** The conversations waiting in the agent's teams' queues, oldest first. */
async function loadQueue() {
  const me = await api.get('/agents/me');
  showWorkload(me);
  const queues = await Promise.all((me.team_ids ?? []).map((team) => api.get(`/teams/${team}/queue`)));
  return queues.flatMap((q) => q.conversations).sort((a, b) => (a.queued_at ?? '').localeCompare(b.queued_at ?? ''));
}

async function loadInbox() {
  const filter = $('input[name=filter]:checked').value;
  if (filter === 'queue') {
    const waiting = await loadQueue();
    const list = $('#conversations');
    list.innerHTML = waiting.length ? '' : '<li class="empty">Nobody is waiting.</li>';
    for (const c of waiting) {
      const path = `/chat/conversations/${c.id}`;
      list.append(row(c.id, c.title ?? 'Conversation', `waiting since ${clock(c.queued_at)} · ${c.user_id}`, 0, () => open('#conversation', path, c.id, true)));
    }
    return;
  }
  const query = {
    open: '&status=open',
    pending: '&status=pending',
    snoozed: '&status=snoozed',
    mine: '&assignee_id=me',
    unread: '&unread=true',
  }[filter];
  const label = $('#label-filter').value;
  const byLabel = label ? `&label=${encodeURIComponent(label)}` : '';
  // Each row with its last message and SLA clock (docs/support.md).
  const page = await api.get(`/chat/conversations?limit=50&include=last_message${query}${byLabel}`);
  const rows = page.conversations;
  $('.load-error')?.remove();
  const list = $('#conversations');
  list.innerHTML = rows.length ? '' : '<li class="empty">Nothing here.</li>';
  for (const c of rows) {
    const path = `/chat/conversations/${c.id}`;
    feed.follow(c.id, c.last_seq, path);
    const li = row(c.id, c.title ?? 'Conversation', `${c.status} · ${c.user_id} · ${clock(c.last_message_at)}`, c.unread_count, () =>
      open('#conversation', path, c.id, true),
    );
    const button = $('button', li);
    if (c.last_message) {
      const preview = document.createElement('span');
      preview.className = 'preview';
      preview.textContent = `${c.last_message.sender_id === me ? 'You: ' : ''}${c.last_message.preview}`;
      button.append(preview);
    }
    if (c.labels?.length) {
      const chips = document.createElement('span');
      chips.className = 'row-labels';
      chips.textContent = c.labels.map((l) => `#${l}`).join(' ');
      button.append(chips);
    }
    const due = slaClock(c);
    if (due) button.append(due);
    list.append(li);
  }
}

/** The SLA target a conversation is racing (first response until answered, then
 * resolution), as a ticking badge; none when nothing is due or it is closed. */
function slaClock(conversation) {
  const sla = conversation.sla;
  if (!sla || ['resolved', 'closed'].includes(conversation.status)) return null;
  const [target, due] = !sla.first_response_at && sla.first_response_due_at
    ? ['first response', sla.first_response_due_at]
    : ['resolution', sla.resolution_due_at];
  if (!due) return null;
  const badge = document.createElement('span');
  badge.className = 'clock';
  badge.dataset.due = due;
  badge.dataset.target = target;
  tick(badge);
  return badge;
}

function tick(badge) {
  const left = Math.round((new Date(badge.dataset.due) - Date.now()) / 60_000);
  const span = Math.abs(left) >= 60 ? `${Math.floor(Math.abs(left) / 60)} h ${Math.abs(left) % 60} min` : `${Math.abs(left)} min`;
  badge.textContent = left < 0 ? `${badge.dataset.target} overdue by ${span}` : `${badge.dataset.target} due in ${span}`;
  badge.classList.toggle('late', left < 0);
  badge.classList.toggle('soon', left >= 0 && left < 15);
  badge.title = `${badge.dataset.target} due at ${clock(badge.dataset.due)}`;
}

// The countdowns move with the clock.
setInterval(() => document.querySelectorAll('.clock').forEach(tick), 30_000);

/** Messages matching every word (GET /chat/search), as rows that open their
 * conversation. */
async function search(q) {
  const words = q.trim();
  if (!words) return loadInbox();
  const found = await api.get(`/chat/search?q=${encodeURIComponent(words)}&limit=50`);
  const list = $('#conversations');
  list.innerHTML = found.results.length ? '' : '<li class="empty">No message matches.</li>';
  for (const hit of found.results) {
    const id = hit.conversation_id ?? hit.room_id;
    const path = `/chat/conversations/${id}`;
    list.append(row(id, hit.content ?? '', `${hit.sender ?? ''} · ${clock(hit.created_at)}`, 0, () => open('#conversation', path, id, true)));
  }
}

async function loadOrders() {
  // The marketplace's order chats: buyer with vendor, and buyer with an agent.
  const pages = await Promise.all(
    ['vendor_to_user', 'agent_to_user'].map((type) => api.get(`/rooms?type=${type}&limit=25`)),
  );
  const rooms = pages.flatMap((page) => page.rooms).sort((a, b) => (b.last_message_at ?? b.created_at ?? '').localeCompare(a.last_message_at ?? a.created_at ?? ''));
  const list = $('#order-rooms');
  list.innerHTML = rooms.length ? '' : '<li class="empty">No order chats.</li>';
  for (const room of rooms) {
    const path = `/rooms/${room.id}`;
    feed.follow(room.id, room.last_seq, path);
    const meta = [room.order_id && `order ${room.order_id}`, room.vendor_id && `vendor ${room.vendor_id}`, room.status].filter(Boolean).join(' · ');
    list.append(row(room.id, room.name ?? 'Order chat', meta, 0, () => open('#order', path, room.id, false)));
  }
}

function row(id, title, meta, unread, onOpen) {
  const li = document.createElement('li');
  li.innerHTML = `<button type="button" data-room="${escapeHtml(id)}"><span class="title">${escapeHtml(title)}</span>
    <span class="meta">${escapeHtml(meta)}</span>${unread ? `<span class="count" aria-label="${unread} unread">${unread}</span>` : ''}</button>`;
  const button = $('button', li);
  button.toggleAttribute('aria-current', view?.roomId === id);
  button.addEventListener('click', onOpen);
  return li;
}

function open(paneSelector, path, roomId, support) {
  for (const b of document.querySelectorAll('.rows button')) b.setAttribute('aria-current', String(b.dataset.room === roomId));
  if (!support) $('#customer').hidden = true;
  view = new RoomView($(paneSelector), path, roomId, support);
  view.load();
}

/** The customer panel: who they are (their profile, as the room's members carry it:
 * a customer without a profile is nulls there, not a 404) and their other
 * conversations with the desk, newest first, with status and labels. */
async function showCustomer(userId, roomId) {
  const pane = $('#customer');
  const [profile, rooms] = await Promise.all([
    api.get(`/rooms/${encodeURIComponent(roomId)}`)
      .then((room) => (room.members ?? []).find((m) => m.user_id === userId) ?? {})
      .catch(() => ({})),
    api.get(`/rooms?member=${encodeURIComponent(userId)}&type=support&limit=10`).catch(() => ({ rooms: [] })),
  ]);
  if (view?.roomId !== roomId) return; // another conversation opened meanwhile
  const facts = [
    ['Name', profile.username],
    ['Email', profile.email],
    ['Phone', profile.phone],
    ['User id', userId],
  ].filter(([, value]) => value);
  const past = rooms.rooms.filter((r) => r.id !== roomId);
  pane.innerHTML = `<h2>${escapeHtml(profile.username ?? userId)}</h2>
    <dl>${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
    <h3>Past conversations</h3>
    <ul class="past">${past.length ? '' : '<li>None.</li>'}</ul>`;
  const list = $('.past', pane);
  for (const r of past) {
    const li = document.createElement('li');
    const link = document.createElement('a');
    link.href = '#inbox';
    link.textContent = r.name ?? 'Conversation';
    link.addEventListener('click', (e) => {
      e.preventDefault();
      open('#conversation', `/chat/conversations/${r.id}`, r.id, true);
    });
    const meta = document.createElement('span');
    meta.className = 'past-meta';
    meta.textContent = [r.status, clock(r.last_message_at ?? r.created_at), ...(r.labels ?? []).map((l) => `#${l}`)].join(' · ');
    li.append(link, meta);
    list.append(li);
  }
  pane.hidden = false;
}

class RoomView {
  constructor(pane, path, roomId, support) {
    this.pane = pane;
    this.path = path;
    this.roomId = roomId;
    this.support = support;
    pane.replaceChildren($('#room-view').content.cloneNode(true));
    this.el = {
      title: $('.room-title', pane), meta: $('.room-meta', pane), log: $('.log', pane),
      typing: $('.typing', pane), error: $('.error', pane), form: $('.composer', pane),
      text: $('textarea', pane), note: $('input[name=note]', pane), file: $('input[type=file]', pane),
      members: $('.members', pane), actions: $('.actions', pane),
      labels: $('.labels', pane), chips: $('.label-chips', pane), choice: $('.label-choice', pane),
      sla: $('.sla', pane),
    };
    this.el.labels.hidden = !support;
    this.el.choice.addEventListener('change', () => this.label('POST', this.el.choice.value));
    this.el.chips.addEventListener('click', (e) => e.target.dataset.label && this.label('DELETE', e.target.dataset.label));
    this.el.actions.hidden = !support;
    $('[data-act=ai]', pane).hidden = !config.ai;
    this.el.actions.addEventListener('click', (e) => e.target.dataset.act && this.act(e.target.dataset.act));
    this.el.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.el.text.addEventListener('input', () => {
      feed.typing(roomId);
      if (support) this.suggest();
    });
    // A canned response: `/code` then Enter or Tab takes the first, or a click.
    this.el.canned = $('.canned', pane);
    this.el.text.addEventListener('keydown', (e) => {
      if (this.el.canned.hidden || !['Enter', 'Tab', 'Escape'].includes(e.key)) return;
      e.preventDefault();
      if (e.key === 'Escape') this.el.canned.hidden = true;
      else this.pick(this.el.canned.querySelector('li'));
    });
    this.el.canned.addEventListener('click', (e) => this.pick(e.target.closest('li')));
    this.el.file.addEventListener('change', () => this.attach());
  }

  async load() {
    try {
      // The tenant's labels too: ones defined since the console opened are offered.
      if (this.support) loadLabels().catch(() => {});
      const [room, page] = await Promise.all([api.get(this.path), api.get(`${this.path}/messages?limit=50`)]);
      this.room = room;
      this.head();
      this.el.log.replaceChildren();
      for (const message of [...page.messages].reverse()) this.render(message);
      feed.follow(this.roomId, page.last_seq ?? 0, this.path);
      api.post(`${this.path}/read`, {}).catch(() => {});
    } catch (err) {
      this.fail(err);
    }
  }

  head() {
    const r = this.room;
    this.el.title.textContent = r.title ?? r.name ?? 'Conversation';
    const assignee = r.assignee_id ? `assigned to ${r.assignee_id}` : 'unassigned';
    this.el.meta.textContent = this.support
      ? `${r.status} · ${assignee} · customer ${r.user_id}`
      : [r.status, r.order_id && `order ${r.order_id}`, r.product && `product ${r.product}`].filter(Boolean).join(' · ');
    this.el.meta.dataset.status = r.status;
    const muted = r.muted_until && new Date(r.muted_until) > new Date();
    if (muted) this.el.meta.textContent += ` · muted until ${clock(r.muted_until)}`;
    const mute = $('[data-act=mute]', this.pane);
    if (mute) mute.textContent = muted ? 'Unmute' : 'Mute 8 h';
    if (this.support) {
      this.showLabels();
      const due = slaClock(r);
      this.el.sla.hidden = !due;
      this.el.sla.replaceChildren(...(due ? ['SLA: ', due] : []));
      if (r.user_id !== this.customerShown) {
        this.customerShown = r.user_id;
        showCustomer(r.user_id, this.roomId).catch(() => {});
      }
    }
    this.el.members.replaceChildren(
      ...(r.members ?? []).map((m) => {
        const li = document.createElement('li');
        li.textContent = [m.username ?? m.user_id, m.role, m.email, m.phone].filter(Boolean).join(' · ');
        return li;
      }),
    );
  }

  /** Canned responses whose short code starts with what follows a leading `/`,
   * filled in for this conversation by the API (docs/support.md). */
  async suggest() {
    const typed = this.el.text.value;
    const match = /^\/([a-z0-9_-]*)$/.exec(typed);
    if (!match) {
      this.el.canned.hidden = true;
      return;
    }
    const query = new URLSearchParams({ prefix: match[1], conversation_id: this.roomId });
    const found = (await api.get(`/canned-responses?${query}`).catch(() => ({ canned_responses: [] }))).canned_responses;
    if (this.el.text.value !== typed) return; // typed on meanwhile
    this.el.canned.replaceChildren(
      ...found.map((r, i) => {
        const li = document.createElement('li');
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', String(i === 0));
        li.dataset.text = r.rendered ?? r.content;
        li.innerHTML = `<code>/${escapeHtml(r.short_code)}</code>${escapeHtml(r.rendered ?? r.content)}`;
        return li;
      }),
    );
    this.el.canned.hidden = !found.length;
  }

  compose(note) {
    this.el.note.checked = note;
    this.el.text.focus();
  }

  pick(li) {
    if (!li) return;
    this.el.text.value = li.dataset.text;
    this.el.canned.hidden = true;
    this.el.text.focus();
  }

  /** Puts a label on the conversation (POST) or takes one off (DELETE). */
  async label(method, name) {
    if (!name) return;
    this.el.error.hidden = true;
    try {
      const done = method === 'POST'
        ? await api.post(`${this.path}/labels`, { labels: [name] })
        : await api.call('DELETE', `${this.path}/labels/${encodeURIComponent(name)}`);
      this.room = { ...this.room, labels: done.labels };
      this.head();
    } catch (err) {
      this.fail(err);
    }
  }

  showLabels() {
    const on = this.room?.labels ?? [];
    this.el.chips.replaceChildren(
      ...on.map((name) => {
        const li = document.createElement('li');
        li.textContent = name;
        const off = document.createElement('button');
        off.type = 'button';
        off.dataset.label = name;
        off.textContent = '×';
        off.setAttribute('aria-label', `Remove label ${name}`);
        li.append(off);
        return li;
      }),
    );
    this.el.choice.replaceChildren(new Option('…', ''), ...labels.filter((l) => !on.includes(l)).map((l) => new Option(l, l)));
  }

  fail(err) {
    this.el.error.hidden = false;
    this.el.error.textContent = err?.message ?? String(err);
  }

  async act(action) {
    this.el.error.hidden = true;
    const soon = new Date(Date.now() + 3600_000).toISOString();
    const body = {
      assign: { assignee_id: me },
      resolve: { status: 'resolved' },
      snooze: { status: 'snoozed', snoozed_until: soon },
    }[action];
    try {
      if (action === 'mute') {
        if (!this.room) return; // not loaded yet: nothing to toggle
        const muted = this.room.muted_until && new Date(this.room.muted_until) > new Date();
        const until = muted ? null : new Date(Date.now() + 8 * 3600_000).toISOString();
        const done = await api.put(`/rooms/${this.roomId}/notifications`, { muted_until: until });
        this.room = { ...this.room, muted_until: done.muted_until };
        this.head();
      } else if (action === 'ai') {
        const last = [...this.el.log.querySelectorAll('.msg:not(.staff)')].pop();
        await api.post(`${this.path}/ai-response`, { message: last?.dataset.text ?? 'Hello' });
      } else {
        this.room = { ...this.room, ...(await api.put(this.path, body)) };
        this.head();
      }
    } catch (err) {
      this.fail(err);
    }
  }

  async send(attachments = []) {
    const content = this.el.text.value.trim();
    if (!content && !attachments.length) return;
    this.el.error.hidden = true;
    const body = { content: content || attachments.map((a) => a.name).join(', '), attachments };
    if (this.el.note.checked) body.message_type = 'note';
    try {
      this.render(await api.post(`${this.path}/messages`, body));
      this.el.text.value = '';
    } catch (err) {
      this.fail(err);
    }
  }

  async attach() {
    const file = this.el.file.files[0];
    if (!file) return;
    try {
      await this.send([await api.upload(this.path, file)]);
    } catch (err) {
      this.fail(err);
    } finally {
      this.el.file.value = '';
    }
  }

  change(event) {
    if (event.type.startsWith('message.')) this.render(event.data);
    if (event.type === 'message.new') {
      this.el.typing.textContent = '';
      // Read while on screen.
      clearTimeout(this.readTimer);
      this.readTimer = setTimeout(() => api.post(`${this.path}/read`, {}).catch(() => {}), 500);
    }
    if (event.type === 'room.updated') {
      this.room = { ...this.room, ...event.data };
      this.head();
    }
  }

  typing(frame) {
    if (frame.room_id !== this.roomId || frame.user_id === me) return;
    this.el.typing.textContent = `${frame.user_id} is typing…`;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => (this.el.typing.textContent = ''), 3000);
  }

  render(message) {
    const id = `m-${message.id}`;
    let bubble = document.getElementById(id);
    if (!bubble) {
      bubble = document.createElement('div');
      bubble.id = id;
      this.el.log.append(bubble);
    }
    // The same message comes back (the POST's answer, then the feed): draw it once
    // per version.
    const version = `${message.edit_count ?? 0}:${message.is_deleted}`;
    if (bubble.dataset.version === version) return;
    bubble.dataset.version = version;
    const staff = message.sender_id === me || message.sender === 'agent' || message.sender === 'admin';
    const note = message.message_type === 'note';
    bubble.className = `msg${staff ? ' staff' : ''}${note ? ' note' : ''}`;
    bubble.dataset.text = message.content;
    bubble.innerHTML = message.is_deleted
      ? '<em>message deleted</em>'
      : `<span class="who">${escapeHtml(message.sender_id)}${note ? ' · internal note' : ''}</span>${escapeHtml(message.content)}<time>${clock(message.created_at)}</time><span class="files"></span>`;
    const files = bubble.querySelector('.files');
    for (const attachment of message.attachments ?? []) showAttachment(api, this.path, attachment, files);
    this.el.log.scrollTop = this.el.log.scrollHeight;
  }
}

/** The caller's notification settings into the form. */
async function loadSettings() {
  const form = $('#notify-form');
  delete form.dataset.loaded;
  const settings = await api.get('/me/notification-settings');
  for (const channel of ['push', 'email', 'mobile']) form.elements[channel].checked = settings.channels[channel];
  form.elements.quiet.checked = Boolean(settings.quiet_hours);
  form.elements.start.value = settings.quiet_hours?.start ?? '22:00';
  form.elements.end.value = settings.quiet_hours?.end ?? '07:00';
  form.elements.zone.value = settings.quiet_hours?.time_zone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  $('.saved', form).textContent = '';
  $('.error', form).hidden = true;
  form.dataset.loaded = 'true';
  return settings;
}

async function saveSettings() {
  const form = $('#notify-form');
  const f = form.elements;
  const body = {
    channels: { push: f.push.checked, email: f.email.checked, mobile: f.mobile.checked },
    quiet_hours: f.quiet.checked ? { start: f.start.value, end: f.end.value, time_zone: f.zone.value.trim() } : null,
  };
  await api.put('/me/notification-settings', body);
  $('.error', form).hidden = true;
  $('.saved', form).textContent = 'Saved.';
}

function showFormError(err) {
  const box = $('#notify-form .error');
  box.hidden = false;
  box.textContent = err.message;
}

/** Registers the service worker and subscribes this browser to Web Push with the
 * stack's VAPID key; the subscription goes to POST /me/push-subscriptions. */
async function enablePush() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) throw new Error('this browser has no Web Push');
  const settings = await api.get('/me/notification-settings');
  const key = settings.web_push?.vapid_public_key;
  if (!key) throw new Error('the server has no VAPID key');
  if ((await Notification.requestPermission()) !== 'granted') throw new Error('permission refused');
  const registration = await navigator.serviceWorker.register('sw.js');
  const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await api.post('/me/push-subscriptions', subscription.toJSON());
  $('#push-state').textContent = 'Notifications are on in this browser.';
}

async function loadAnalytics() {
  const to = new Date();
  const from = new Date(to.getTime() - 13 * 86400_000);
  const day = (d) => d.toISOString().slice(0, 10);
  const stats = await api.get(`/chat/analytics/dashboard?from=${day(from)}&to=${day(to)}`);
  const figures = [
    ['Conversations', stats.total_conversations ?? stats.conversations],
    ['Messages', stats.total_messages ?? stats.messages],
    ['Resolutions', stats.resolutions],
    ['Avg. response (s)', stats.average_response_time == null ? '–' : Math.round(stats.average_response_time)],
  ];
  $('#figures').innerHTML = figures
    .map(([name, value]) => `<div><dt>${escapeHtml(name)}</dt><dd>${escapeHtml(value ?? 0)}</dd></div>`)
    .join('');
  $('#chart').innerHTML = chart(stats.daily_stats ?? []);
}

/** A bar chart of messages (and conversations) per day, as SVG. */
function chart(days) {
  const width = 700;
  const height = 220;
  const top = Math.max(1, ...days.map((d) => d.messages));
  const step = width / Math.max(1, days.length);
  const bars = days
    .map((d, i) => {
      const h = (d.messages / top) * (height - 40);
      const c = (d.conversations / top) * (height - 40);
      const x = i * step;
      return `<g><title>${d.date}: ${d.messages} messages, ${d.conversations} conversations</title>
        <rect x="${x + 4}" y="${height - 20 - h}" width="${step / 2 - 4}" height="${h}" fill="#2453d6"/>
        <rect x="${x + step / 2}" y="${height - 20 - c}" width="${step / 2 - 4}" height="${c}" fill="#f5b400"/>
        <text x="${x + step / 2}" y="${height - 5}" font-size="11" text-anchor="middle">${d.date.slice(5)}</text></g>`;
    })
    .join('');
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="Messages (blue) and conversations (yellow) per day">${bars}</svg>`;
}

