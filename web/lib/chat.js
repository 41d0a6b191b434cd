// The public API's client, shared by the widget and the console: REST with the
// envelope, uploads by presigned POST, and the WebSocket feed with the documented
// client algorithm (docs/realtime.md): subscribe with `after`, drop duplicates and
// apply in `seq` order, fill holes over REST, reconnect with backoff.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor({ api, token }) {
    this.base = api.replace(/\/$/, '');
    this.token = token;
  }

  async call(method, path, body) {
    const headers = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let json = {};
    try {
      json = await res.json();
    } catch {
      // An answer without a body (or not JSON): its status says enough.
    }
    if (!res.ok || json.success === false) {
      throw new ApiError(res.status, json.error?.code ?? 'http_error', json.message ?? res.statusText);
    }
    return json.data;
  }

  get(path) {
    return this.call('GET', path);
  }

  post(path, body) {
    return this.call('POST', path, body);
  }

  put(path, body) {
    return this.call('PUT', path, body);
  }

  /** Uploads `file` into the room at `roomPath` (e.g. /chat/conversations/ID): the
   * storage checks the presigned form; answers the attachment a message cites. */
  async upload(roomPath, file) {
    const form = await this.post(`${roomPath}/uploads`, {
      name: file.name,
      content_type: file.type,
      size: file.size,
    });
    const data = new FormData();
    for (const [name, value] of Object.entries(form.fields)) data.append(name, value);
    data.append('file', file);
    const res = await fetch(form.url, { method: 'POST', body: data });
    if (!res.ok) throw new ApiError(res.status, 'upload_refused', 'the storage refused the file');
    return { name: file.name, upload_id: form.upload_id };
  }

  /** A short-lived link to an attachment the caller may read. */
  async attachmentUrl(roomPath, uploadId) {
    return (await this.get(`${roomPath}/attachments/${uploadId}`)).url;
  }
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10_000;
const HOLE_WAIT_MS = 1_000;
const PING_EVERY_MS = 5 * 60_000;
const TYPING_EVERY_MS = 2_100;

/**
 * The live feed of some rooms, and of the user's own inbox. Events: `change` (detail
 * {roomId, event}, each seq once, in order), `typing` and `read` (as the server sends
 * them), `status` (detail 'connecting' | 'live' | 'offline'), `reload` (detail
 * {roomId}: the position expired, reload the room), `inbox` (detail: an
 * `inbox.added` / `inbox.removed` once each in `inbox_seq` order, an `inbox.updated`,
 * or {type: 'inbox.reload'} when the inbox's changes since the last one applied are
 * no longer kept).
 */
export class Feed extends EventTarget {
  constructor(api, wsUrl) {
    super();
    this.api = api;
    this.wsUrl = wsUrl.replace(/\/$/, '');
    this.rooms = new Map();
    // The inbox feed's last number applied; null until the first connection says
    // where it stands (what came before is in the inbox as loaded over REST).
    this.inboxLast = null;
    this.socket = null;
    this.delay = RECONNECT_MIN_MS;
    this.closed = false;
  }

  /** Follows `roomId` from `lastSeq` on; `restPath` is where its events are read
   * over REST (/rooms/ID or /chat/conversations/ID). */
  follow(roomId, lastSeq, restPath) {
    const known = this.rooms.get(roomId);
    if (known) {
      // A response knows of later changes than were applied: fetch them (they are
      // applied, in order, like any other), never skip them.
      if (lastSeq > known.last) this.fill(roomId);
      return;
    }
    this.rooms.set(roomId, { last: lastSeq, buffer: new Map(), restPath, timer: null });
    this.send({ action: 'subscribe', room_id: roomId, after: lastSeq });
  }

  lastSeq(roomId) {
    return this.rooms.get(roomId)?.last ?? 0;
  }

  /** Says the user is typing in `roomId`: at most once per TYPING_EVERY_MS (the
   * server's own limit), with a trailing one so that typing that goes on is seen. */
  typing(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    const wait = (room.typedAt ?? 0) + TYPING_EVERY_MS - Date.now();
    if (wait > 0) {
      room.typingTimer ??= setTimeout(() => {
        room.typingTimer = null;
        this.typing(roomId);
      }, wait);
      return;
    }
    room.typedAt = Date.now();
    this.send({ action: 'typing', room_id: roomId });
  }

  send(frame) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  async connect() {
    this.closed = false;
    this.status('connecting');
    let ticket;
    try {
      ticket = (await this.api.post('/realtime/tickets')).ticket;
    } catch {
      return this.retry();
    }
    const socket = new WebSocket(`${this.wsUrl}/?ticket=${encodeURIComponent(ticket)}`);
    this.socket = socket;
    socket.onopen = () => {
      this.delay = RECONNECT_MIN_MS;
      this.status('live');
      // Subscribe first, with the catch-up in the answer: nothing falls between.
      for (const [roomId, room] of this.rooms) {
        this.send({ action: 'subscribe', room_id: roomId, after: room.last });
      }
      this.syncInbox();
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ action: 'ping' }), PING_EVERY_MS);
    };
    socket.onmessage = (message) => this.frame(JSON.parse(message.data));
    socket.onclose = () => {
      clearInterval(this.pinger);
      if (this.socket === socket) this.retry();
    };
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }

  retry() {
    if (this.closed) return;
    this.status('offline');
    setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, RECONNECT_MAX_MS);
  }

  status(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('status', { detail: state }));
  }

  /** Asks for the inbox's changes since the last applied (or, the first time, where
   * the inbox feed stands). */
  syncInbox() {
    // The id comes back on the answer, and on an error: that one is the inbox's.
    const ask = { action: 'sync_inbox', id: 'inbox' };
    this.send(this.inboxLast === null ? ask : { ...ask, after: this.inboxLast });
  }

  /** A numbered inbox change: applied once, in order; a hole is asked for. */
  acceptInbox(event) {
    if (this.inboxLast !== null && event.inbox_seq <= this.inboxLast) return; // a duplicate
    if (this.inboxLast !== null && event.inbox_seq !== this.inboxLast + 1) return this.syncInbox();
    this.inboxLast = event.inbox_seq;
    this.dispatchEvent(new CustomEvent('inbox', { detail: event }));
  }

  frame(frame) {
    switch (frame.type) {
      case 'inbox_synced':
        if (this.inboxLast === null && !frame.events) this.inboxLast = frame.last_seq;
        for (const event of frame.events ?? []) this.acceptInbox(event);
        if (frame.has_more) this.syncInbox();
        return;
      case 'inbox.added':
      case 'inbox.removed':
        this.acceptInbox(frame);
        return;
      case 'inbox.updated':
        this.dispatchEvent(new CustomEvent('inbox', { detail: frame }));
        return;
      case 'subscribed':
      case 'resumed':
        for (const event of frame.events ?? []) this.accept(frame.room_id, event);
        if (frame.has_more || frame.last_seq > this.lastSeq(frame.room_id)) this.fill(frame.room_id);
        return;
      case 'typing':
      case 'read':
        this.dispatchEvent(new CustomEvent(frame.type, { detail: frame }));
        return;
      case 'error':
        if (frame.code === 'unauthenticated') this.socket?.close();
        if (frame.code === 'cursor_expired' && frame.id === 'inbox') {
          // The inbox's missed changes expired: start again from where it stands.
          this.inboxLast = null;
          this.syncInbox();
          this.dispatchEvent(new CustomEvent('inbox', { detail: { type: 'inbox.reload' } }));
        }
        return;
      case 'pong':
      case 'unsubscribed':
        return;
      default:
        if (typeof frame.seq === 'number') this.accept(frame.room_id, frame);
    }
  }

  accept(roomId, event) {
    const room = this.rooms.get(roomId);
    if (!room || event.seq <= room.last) return; // a duplicate
    if (event.seq !== room.last + 1) {
      room.buffer.set(event.seq, event);
      clearTimeout(room.timer);
      room.timer = setTimeout(() => this.fill(roomId), HOLE_WAIT_MS);
      return;
    }
    this.apply(roomId, room, event);
    while (room.buffer.has(room.last + 1)) {
      const next = room.buffer.get(room.last + 1);
      room.buffer.delete(next.seq);
      this.apply(roomId, room, next);
    }
  }

  apply(roomId, room, event) {
    room.last = event.seq;
    if (event.type !== 'hidden') {
      this.dispatchEvent(new CustomEvent('change', { detail: { roomId, event } }));
    }
  }

  /** Reads the room's events after the last applied over REST, until none is left. */
  async fill(roomId) {
    const room = this.rooms.get(roomId);
    if (!room || room.filling) return;
    room.filling = true;
    try {
      for (;;) {
        const page = await this.api.get(`${room.restPath}/events?after=${room.last}&limit=100`);
        for (const event of page.events) this.accept(roomId, event);
        if (!page.has_more) break;
      }
    } catch (err) {
      if (err.code === 'cursor_expired') {
        this.dispatchEvent(new CustomEvent('reload', { detail: { roomId } }));
      }
    } finally {
      room.filling = false;
    }
  }
}

/** Text safe to put in HTML. */
export function escapeHtml(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A time as hours and minutes, in the reader's locale. */
export function clock(at) {
  return at ? new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
}

/** The token's subject (the user), read without verifying it: the API verifies. */
export function subjectOf(token) {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub;
  } catch {
    return '';
  }
}

/** Shows `attachment` of a message in the room at `roomPath` inside `into`: an image
 * inline, anything else as a link (uploads through a short-lived link). */
export async function showAttachment(api, roomPath, attachment, into) {
  const url = attachment.upload_id
    ? await api.attachmentUrl(roomPath, attachment.upload_id).catch(() => null)
    : attachment.url;
  if (!url) return;
  const image = (attachment.type ?? '').startsWith('image/');
  const el = document.createElement(image ? 'img' : 'a');
  if (image) {
    el.src = url;
    el.alt = attachment.name;
  } else {
    el.href = url;
    el.textContent = attachment.name;
    el.target = '_blank';
    el.rel = 'noopener';
  }
  into.append(el);
}
