// The service worker of the console and of the widget's host pages: shows a Web Push
// notification (docs/notifications.md) and, on a click, brings the console to the
// conversation (an open tab if there is one, else a new one). A host page registers
// its own copy as `chat-sw.js?open=/shop/` (data-service-worker): a click then opens
// that page of the site, where the widget shows the conversation. The payload is what
// the notify function sends: {type, room_id, title, body, count, sender_id,
// message_id, path}.

const OPEN = new URL(self.location.href).searchParams.get('open');

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data?.text() ?? '' };
  }
  event.waitUntil(
    self.registration.showNotification(data.title || 'New message', {
      body: data.body ?? '',
      // One notification per room: a newer one replaces it.
      tag: data.room_id ? `room-${data.room_id}` : undefined,
      renotify: Boolean(data.room_id),
      data,
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const room = event.notification.data?.room_id;
  const target = OPEN
    ? new URL(OPEN, self.registration.scope).href
    : new URL(room ? `console.html#conversation/${room}` : 'console.html', self.registration.scope).href;
  event.waitUntil(
    (async () => {
      const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const tab = open.find((c) => c.url.startsWith(OPEN ? target : new URL('console.html', self.registration.scope).href));
      if (tab) {
        await tab.navigate(target).catch(() => {});
        return tab.focus();
      }
      return self.clients.openWindow(target);
    })(),
  );
});
