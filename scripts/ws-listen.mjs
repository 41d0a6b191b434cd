// Follows a room over the WebSocket API and prints every frame (one JSON per line).
//   node --experimental-websocket scripts/ws-listen.mjs <ticket> <room_id> [after]
// The ticket comes from POST /realtime/tickets (single use, 60 s). WS_URL defaults to
// the dev server's ws://127.0.0.1:3001; a deployed stack's is its RealtimeUrl output.
// (Node 22 and later have WebSocket without the flag.)
const [ticket, room, after] = process.argv.slice(2);
if (!ticket || !room) {
  console.error('usage: ws-listen.mjs <ticket> <room_id> [after]');
  process.exit(2);
}
const base = process.env.WS_URL ?? 'ws://127.0.0.1:3001';
const ws = new WebSocket(`${base}/?ticket=${encodeURIComponent(ticket)}`);
ws.onopen = () => {
  const subscribe = { action: 'subscribe', room_id: room };
  if (after !== undefined) subscribe.after = Number(after);
  ws.send(JSON.stringify(subscribe));
  // API Gateway closes a socket idle for 10 minutes.
  setInterval(() => ws.send('{"action":"ping"}'), 5 * 60 * 1000).unref();
};
ws.onmessage = (frame) => console.log(frame.data);
ws.onerror = () => console.error('connection failed (a used or expired ticket is refused)');
ws.onclose = (e) => process.exit(e.code === 1000 ? 0 : 1);
