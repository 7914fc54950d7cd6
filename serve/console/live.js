// Live status over the WebSocket /live: the server pushes each followed asset's status as
// its shard completes a tick. The first message authenticates (browsers cannot set an
// Authorization header on a WebSocket); then {"follow": [ids]} chooses the assets.
import { session } from "./api.js";

export class Live {
  constructor(indicator) {
    this.indicator = indicator;
    this.socket = null;
    this.ids = [];
    this.onStatus = null;
    this.retry = 500;
  }

  connect() {
    this.close();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/live`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ token: session.token }));
      socket.send(JSON.stringify({ follow: this.ids }));
      this.show("live", "live");
      this.retry = 500;
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.error) { this.show(`offline: ${message.error}`, "down"); return; }
      for (const status of message.statuses || []) {
        status.received = performance.now();
        if (this.onStatus) this.onStatus(status, message);
      }
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.show("reconnecting", "down");
      setTimeout(() => { if (this.socket === socket && session.token) this.connect(); },
        this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    });
  }

  follow(ids, onStatus = null) {
    this.ids = ids;
    this.onStatus = onStatus;
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ follow: ids }));
    }
  }

  close() {
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close();
    this.show("offline", "down");
  }

  show(text, state) {
    this.indicator.textContent = text;
    this.indicator.dataset.state = state;
  }
}
