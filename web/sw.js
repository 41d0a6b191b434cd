// The console's service worker: shows a Web Push notification (docs/notifications.md)
// and, on a click, brings the console to the conversation (an open tab if there is
// one, else a new one). The payload is what the notify function sends:
// {type, room_id, title, body, count, sender_id, message_id, path}.

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
  const target = new URL(room ? `console.html#conversation/${room}` : 'console.html', self.registration.scope).href;
  event.waitUntil(
    (async () => {
      const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const tab = open.find((c) => c.url.startsWith(new URL('console.html', self.registration.scope).href));
      if (tab) {
        await tab.navigate(target).catch(() => {});
        return tab.focus();
      }
      return self.clients.openWindow(target);
    })(),
  );
});
