// The customer chat widget. Embed it with one tag (docs: web/README.md):
//
//   <script type="module" src="https://chat.example.com/widget.js" data-agent="a-1"
//           data-token="<the signed-in customer's JWT>"></script>
//
// (or data-token-function="name": a global function answering the token; optional
// data-team="<team id>": conversations go to that support team, and the widget says
// when it is away and when it is back (docs/support.md); optional
// data-api, data-ws, data-title, and data-service-worker="/chat-sw.js": a copy of
// sw.js served from the host page's own origin, which lets the customer turn on
// notifications in their browser).
//
// It starts a conversation on the first message, shows replies live, says when the
// agent is typing, attaches files, keeps an unread badge while collapsed, and survives
// reconnects without losing or repeating a message (the feed's seq). Its markup lives
// in a shadow root, so the host page's styles and ours do not mix.

import { Api, Feed, escapeHtml, clock, showAttachment, subjectOf } from './lib/chat.js';

const script = document.querySelector('script[src*="widget.js"][data-token], script[src*="widget.js"][data-token-function]');
const settings = script?.dataset ?? {};
// The stack's URLs come from config.json beside this file (written at deploy, served
// by the dev server locally); the tag's data-api / data-ws override them.
const deployed = await fetch(new URL('config.json', import.meta.url)).then((r) => (r.ok ? r.json() : {}), () => ({}));
const config = {
  api: settings.api ?? deployed.api ?? new URL(import.meta.url).origin,
  ws: settings.ws ?? deployed.ws,
  agent: settings.agent,
  team: settings.team,
  title: settings.title ?? 'Chat with us',
  token: settings.token ?? (settings.tokenFunction ? window[settings.tokenFunction]() : ''),
  serviceWorker: settings.serviceWorker,
};

const STYLE = `
  form.rate { display: block; margin: 8px 0; padding: 8px; border: 1px solid #d0d6e2; border-radius: 8px; font-size: 13px; }
  form.rate .stars button { background: #fff; color: #2453d6; border: 1px solid #2453d6; }
  form.rate .stars button[aria-pressed="true"] { background: #2453d6; color: #fff; }
  .rate p { margin: 0 0 6px; }
  .rate .stars { display: flex; flex-wrap: wrap; gap: 4px; margin-bottom: 6px; }
  .rate .stars button { font-size: 12px; padding: 2px 6px; }
  .rate .stars button[aria-pressed="true"] { outline: 2px solid #2a5bd7; }
  .rate label { display: block; margin-bottom: 6px; }
  .rate input { width: 100%; box-sizing: border-box; }
:host { all: initial; font: 15px/1.4 system-ui, sans-serif; color: #1d2330; }
* { box-sizing: border-box; }
.launcher { position: fixed; right: 16px; bottom: 16px; border: 0; border-radius: 28px; padding: 14px 20px;
  background: #2453d6; color: #fff; font: inherit; font-weight: 600; cursor: pointer; box-shadow: 0 4px 14px #0003; }
.launcher:focus-visible, button:focus-visible, textarea:focus-visible, label.attach:focus-within { outline: 3px solid #f5b400; outline-offset: 2px; }
.badge { display: inline-block; min-width: 22px; margin-left: 8px; padding: 0 6px; border-radius: 11px; background: #e5484d; font-size: 13px; text-align: center; }
.badge[hidden] { display: none; }
.panel { position: fixed; right: 16px; bottom: 16px; width: min(380px, calc(100vw - 32px)); height: min(560px, calc(100vh - 32px));
  display: flex; flex-direction: column; background: #fff; border-radius: 14px; box-shadow: 0 8px 30px #0004; overflow: hidden; }
.panel[hidden], .launcher[hidden] { display: none; }
header { display: flex; align-items: center; gap: 8px; padding: 12px 14px; background: #2453d6; color: #fff; }
header h2 { flex: 1; margin: 0; font-size: 16px; }
header .state { font-size: 12px; opacity: .85; }
header button { border: 0; background: transparent; color: #fff; font-size: 22px; cursor: pointer; line-height: 1; }
.log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; background: #f4f6fb; }
.msg { max-width: 80%; padding: 8px 12px; border-radius: 12px; background: #fff; border: 1px solid #dfe3ec; white-space: pre-wrap; word-wrap: break-word; }
.msg.mine { align-self: flex-end; background: #2453d6; color: #fff; border-color: #2453d6; }
.msg time { display: block; font-size: 11px; opacity: .7; margin-top: 2px; }
.msg img { display: block; max-width: 100%; margin-top: 6px; border-radius: 6px; }
.msg a { color: inherit; }
.note { font-size: 13px; color: #5b6475; text-align: center; }
.typing { min-height: 20px; padding: 0 14px; font-size: 13px; color: #5b6475; }
form { display: flex; gap: 6px; align-items: flex-end; padding: 10px; border-top: 1px solid #dfe3ec; }
textarea { flex: 1; resize: none; min-height: 40px; max-height: 120px; padding: 8px; border: 1px solid #b8c0d0; border-radius: 8px; font: inherit; }
form button, label.attach { border: 0; border-radius: 8px; padding: 9px 12px; background: #2453d6; color: #fff; font: inherit; cursor: pointer; }
label.attach { display: flex; align-items: center; background: #e6eaf3; color: #1d2330; }
label.attach input { position: absolute; width: 1px; height: 1px; opacity: 0; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
.error { padding: 6px 14px; color: #b4232a; font-size: 13px; }
.prefs { display: flex; flex-direction: column; gap: 8px; padding: 12px 14px; border-bottom: 1px solid #dfe3ec; background: #fff; font-size: 14px; }
.prefs[hidden] { display: none; }
.prefs p { margin: 0; color: #5b6475; }
.prefs input[type=email] { width: 100%; padding: 7px; border: 1px solid #b8c0d0; border-radius: 8px; font: inherit; }
.prefs .row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.prefs button { border: 0; border-radius: 8px; padding: 7px 12px; background: #2453d6; color: #fff; font: inherit; cursor: pointer; }
.prefs button.push { background: #e6eaf3; color: #1d2330; }
.prefs button[hidden] { display: none; }
`;

class Widget {
  constructor(host) {
    this.api = new Api({ api: config.api, token: config.token });
    this.feed = new Feed(this.api, config.ws);
    this.me = subjectOf(config.token);
    this.storageKey = `chat-widget:${this.me}:conversation`;
    this.conversation = localStorage.getItem(this.storageKey);
    this.shown = new Set();
    this.unread = 0;
    this.root = host.attachShadow({ mode: 'open' });
    this.root.innerHTML = `<style>${STYLE}</style>
      <button class="launcher" type="button" aria-haspopup="dialog">${escapeHtml(config.title)}<span class="badge" hidden aria-label="unread messages"></span></button>
      <section class="panel" role="dialog" aria-label="${escapeHtml(config.title)}" hidden>
        <header><h2>${escapeHtml(config.title)}</h2><span class="state" aria-live="polite"></span>
          <button type="button" class="bell" aria-label="Notification settings" aria-expanded="false"><svg width="18" height="18" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.9 1.9 0 0 0 3.4 0"/></svg></button>
          <button type="button" class="close" aria-label="Minimise chat">&minus;</button></header>
        <form class="prefs" aria-label="Notifications" hidden>
          <p>When we answer while you are away:</p>
          <label><input type="checkbox" name="email"> Email me the answer</label>
          <label>Email address <input type="email" name="address" autocomplete="email" placeholder="you@example.com"></label>
          <div class="row"><button type="submit">Save</button><span class="saved" role="status"></span></div>
          <button type="button" class="push" hidden>Notify me in this browser</button>
        </form>
        <div class="log" role="log" aria-live="polite" aria-label="Messages"><p class="note">Ask us anything; an agent will answer here.</p></div>
        <div class="typing" aria-live="polite"></div>
        <div class="error" role="alert" hidden></div>
        <form class="compose">
          <label class="sr" for="chat-text">Your message</label>
          <textarea id="chat-text" name="text" rows="1" placeholder="Write a message…"></textarea>
          <label class="attach" title="Attach a file"><svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 11.5 12.5 20a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5a1.8 1.8 0 0 1-2.6-2.6l7.8-7.8"/></svg><span class="sr">Attach a file</span><input type="file" name="file" accept="image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain"></label>
          <button type="submit">Send</button>
        </form>
      </section>`;
    const $ = (selector) => this.root.querySelector(selector);
    this.el = {
      launcher: $('.launcher'), badge: $('.badge'), panel: $('.panel'), log: $('.log'),
      typing: $('.typing'), state: $('.state'), error: $('.error'), form: $('form.compose'),
      text: $('textarea'), file: $('input[type=file]'), close: $('.close'),
      bell: $('.bell'), prefs: $('form.prefs'), saved: $('.saved'), push: $('button.push'),
    };
    this.el.bell.addEventListener('click', () => this.togglePrefs());
    this.el.prefs.addEventListener('submit', (e) => {
      e.preventDefault();
      this.savePrefs();
    });
    this.el.push.addEventListener('click', () => this.pushHere());
    this.el.launcher.addEventListener('click', () => this.open());
    this.el.close.addEventListener('click', () => this.collapse());
    this.el.panel.addEventListener('keydown', (e) => e.key === 'Escape' && this.collapse());
    this.el.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.el.text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        this.send();
      }
    });
    this.el.text.addEventListener('input', () => this.conversation && this.feed.typing(this.conversation));
    this.el.file.addEventListener('change', () => this.attach());
    this.feed.addEventListener('change', (e) => this.change(e.detail.event));
    this.feed.addEventListener('typing', (e) => this.typing(e.detail));
    this.feed.addEventListener('status', (e) => {
      this.el.state.textContent = e.detail === 'live' ? '' : e.detail === 'offline' ? 'reconnecting…' : 'connecting…';
    });
    this.feed.addEventListener('reload', () => this.load());
    this.feed.connect();
    if (this.conversation) this.load();
  }

  get path() {
    return `/chat/conversations/${this.conversation}`;
  }

  open() {
    this.el.launcher.hidden = true;
    this.el.panel.hidden = false;
    this.unread = 0;
    this.badge();
    this.el.text.focus();
    this.markRead();
    this.showHours();
  }

  /** The team's business hours: away now, and when it is back (once per opening). */
  async showHours() {
    if (!config.team || this.hoursShown) return;
    this.hoursShown = true;
    const hours = await this.api.get(`/teams/${encodeURIComponent(config.team)}/hours`).catch(() => null);
    if (!hours || hours.open) return;
    const back = hours.back_at
      ? ` We are back ${new Date(hours.back_at).toLocaleString([], { weekday: 'long', hour: '2-digit', minute: '2-digit' })}.`
      : '';
    this.note(`${hours.name} is away right now.${back} Leave a message and we will answer then.`);
  }

  collapse() {
    this.el.panel.hidden = true;
    this.el.launcher.hidden = false;
    this.el.launcher.focus();
  }

  badge() {
    this.el.badge.hidden = this.unread === 0;
    this.el.badge.textContent = String(this.unread);
  }

  fail(err) {
    this.el.error.hidden = false;
    this.el.error.textContent = err?.message ?? String(err);
  }

  async load() {
    try {
      const page = await this.api.get(`${this.path}/messages?limit=50`);
      for (const message of [...page.messages].reverse()) this.render(message);
      this.feed.follow(this.conversation, page.last_seq ?? 0, this.path);
    } catch (err) {
      if (err.status === 404) {
        localStorage.removeItem(this.storageKey);
        this.conversation = null;
      } else this.fail(err);
    }
  }

  async ensureConversation(firstWords) {
    if (this.conversation) return;
    const body = { title: firstWords.slice(0, 80) || 'Chat' };
    if (config.agent) body.agent_id = config.agent;
    if (config.team) body.team_id = config.team;
    const made = await this.api.post('/chat/conversations', body);
    this.conversation = made.conversation_id;
    localStorage.setItem(this.storageKey, this.conversation);
    this.feed.follow(this.conversation, 0, this.path);
  }

  async send(attachments = []) {
    const content = this.el.text.value.trim();
    if (!content && attachments.length === 0) return;
    this.el.error.hidden = true;
    try {
      await this.ensureConversation(content || attachments[0].name);
      const message = await this.api.post(`${this.path}/messages`, {
        content: content || attachments.map((a) => a.name).join(', '),
        attachments,
        client_message_id: crypto.randomUUID(),
      });
      this.el.text.value = '';
      this.render(message);
    } catch (err) {
      this.fail(err);
    }
  }

  async attach() {
    const file = this.el.file.files[0];
    if (!file) return;
    try {
      await this.ensureConversation(file.name);
      const attachment = await this.api.upload(this.path, file);
      await this.send([attachment]);
    } catch (err) {
      this.fail(err);
    } finally {
      this.el.file.value = '';
    }
  }

  change(event) {
    if (event.type === 'message.new') {
      const fresh = !this.shown.has(event.data.id);
      this.render(event.data);
      if (fresh && event.data.sender_id !== this.me) {
        this.el.typing.textContent = '';
        if (this.el.panel.hidden) {
          this.unread += 1;
          this.badge();
        } else this.markRead();
      }
    } else if (event.type === 'message.updated' || event.type === 'message.deleted') {
      this.render(event.data);
    } else if (event.type === 'room.updated' && event.data.status === 'resolved') {
      this.note('The conversation was marked resolved. Write again any time.');
      this.askRating();
    }
  }

  /** After a resolution: how did we do? 1 to 5 and a comment, rated once (docs/support.md). */
  askRating() {
    this.el.log.querySelector('form.rate')?.remove();
    const form = document.createElement('form');
    form.className = 'rate';
    form.setAttribute('aria-label', 'Rate this conversation');
    form.innerHTML = `<p>How did we do?</p>
      <div class="stars" role="group" aria-label="Rating">${[1, 2, 3, 4, 5]
        .map((n) => `<button type="button" data-score="${n}" aria-pressed="false" aria-label="${n} of 5">${'★'.repeat(n)}</button>`)
        .join('')}</div>
      <label>Comment (optional) <input type="text" name="comment" maxlength="1000"></label>
      <button type="submit" disabled>Send rating</button>`;
    let score = 0;
    form.querySelector('.stars').addEventListener('click', (e) => {
      const pick = e.target.closest('button[data-score]');
      if (!pick) return;
      score = Number(pick.dataset.score);
      for (const b of form.querySelectorAll('.stars button')) b.setAttribute('aria-pressed', String(b === pick));
      form.querySelector('[type=submit]').disabled = false;
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const comment = form.elements.comment.value.trim();
      try {
        await this.api.post(`${this.path}/rating`, comment ? { rating: score, comment } : { rating: score });
        form.replaceWith(Object.assign(document.createElement('p'), { className: 'note', textContent: 'Thank you for your rating.' }));
      } catch (err) {
        this.fail(err);
      }
    });
    this.el.log.append(form);
    this.el.log.scrollTop = this.el.log.scrollHeight;
  }

  typing(frame) {
    if (frame.room_id !== this.conversation || frame.user_id === this.me) return;
    this.el.typing.textContent = 'Agent is typing…';
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => (this.el.typing.textContent = ''), 3000);
  }

  note(text) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = text;
    this.el.log.append(p);
    this.el.log.scrollTop = this.el.log.scrollHeight;
  }

  /** Shows a message once (a message seen again replaces its bubble). */
  render(message) {
    if (message.message_type === 'note') return; // staff only; never sent to us anyway
    const id = `m-${message.id}`;
    let bubble = this.root.getElementById(id);
    if (!bubble) {
      bubble = document.createElement('div');
      bubble.id = id;
      bubble.dataset.seq = message.seq ?? '';
      this.el.log.append(bubble);
    }
    this.shown.add(message.id);
    // The same message comes back (the POST's answer, then the feed): draw it once
    // per version.
    const version = `${message.edit_count ?? 0}:${message.is_deleted}`;
    if (bubble.dataset.version === version) return;
    bubble.dataset.version = version;
    bubble.className = `msg${message.sender_id === this.me ? ' mine' : ''}`;
    bubble.innerHTML = message.is_deleted
      ? '<em>message deleted</em>'
      : `${escapeHtml(message.content)}<time>${clock(message.created_at)}</time><span class="files"></span>`;
    const files = bubble.querySelector('.files');
    for (const attachment of message.attachments ?? []) showAttachment(this.api, this.path, attachment, files);
    this.el.log.scrollTop = this.el.log.scrollHeight;
  }

  markRead() {
    if (this.conversation) this.api.post(`${this.path}/read`, {}).catch(() => {});
  }

  /** The notification pane: email on answers (with the address on the profile). */
  async togglePrefs() {
    const open = this.el.prefs.hidden;
    this.el.prefs.hidden = !open;
    this.el.bell.setAttribute('aria-expanded', String(open));
    if (!open) return;
    this.el.saved.textContent = '';
    try {
      const [settings, profile] = await Promise.all([
        this.api.get('/me/notification-settings'),
        this.api.get(`/profiles/${encodeURIComponent(this.me)}`),
      ]);
      this.settings = settings;
      this.profile = profile;
      this.el.prefs.elements.email.checked = settings.channels.email && Boolean(profile.email);
      this.el.prefs.elements.address.value = profile.email ?? '';
      this.el.push.hidden = !(config.serviceWorker && 'serviceWorker' in navigator && 'PushManager' in window && settings.web_push?.vapid_public_key);
      this.el.prefs.dataset.loaded = '';
      this.el.prefs.elements.email.focus();
    } catch (err) {
      this.fail(err);
    }
  }

  async savePrefs() {
    const form = this.el.prefs.elements;
    const address = form.address.value.trim();
    this.el.error.hidden = true;
    try {
      if (form.email.checked && !address) throw new Error('Enter the address to email.');
      if (address !== (this.profile.email ?? '')) {
        // The profile is replaced whole: its other fields go back as they were.
        const { username, phone, display_image: displayImage } = this.profile;
        this.profile = await this.api.put('/profiles/me', { username, phone, display_image: displayImage, email: address || null });
      }
      const { web_push: _, ...settings } = this.settings;
      settings.channels = { ...settings.channels, email: form.email.checked };
      this.settings = await this.api.put('/me/notification-settings', settings);
      this.el.saved.textContent = 'Saved.';
    } catch (err) {
      this.fail(err);
    }
  }

  /** Web Push in this browser, through the host page's copy of sw.js. */
  async pushHere() {
    try {
      const registration = await navigator.serviceWorker.register(config.serviceWorker);
      const subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: this.settings.web_push.vapid_public_key,
      });
      await this.api.post('/me/push-subscriptions', subscription.toJSON());
      this.el.saved.textContent = 'Notifications are on in this browser.';
    } catch (err) {
      this.fail(err);
    }
  }
}

const host = document.createElement('div');
host.id = 'chat-widget';
document.body.append(host);
window.chatWidget = new Widget(host);
