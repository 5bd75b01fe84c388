// The live board over the WebSocket (`/api/v1/stream`): a snapshot, then incidents,
// unit statuses, overdue alerts, panic alarms and throttled positions. A dropped
// connection is retried with backoff and resumed from the last sequence number; the
// server sends a fresh snapshot when it cannot replay what was missed.

import { currentSession } from "./api";
import type { StreamMessage } from "./types";

export type LiveMessage = StreamMessage;

export type Connection = "connecting" | "open" | "closed";

export class LiveStream {
  private socket: WebSocket | null = null;
  private epoch: string | null = null;
  private seq: number | null = null;
  private retry = 0;
  private timer: number | null = null;
  private stopped = false;
  /** Messages and bytes received, for the performance figures. */
  stats = { messages: 0, bytes: 0, positions: 0, since: performance.now() };

  constructor(
    private onMessage: (m: LiveMessage) => void,
    private onConnection: (c: Connection) => void,
    private throttleMs = 1000,
  ) {}

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.close(1000);
    this.socket = null;
  }

  /** Drops the connection as a network failure would (for tests of resuming). */
  drop() {
    this.socket?.close(4000, "dropped by the console");
  }

  private connect() {
    const session = currentSession();
    if (!session || this.stopped) return;
    this.onConnection("connecting");
    const params = new URLSearchParams({ access_token: session.token, throttle_ms: String(this.throttleMs) });
    if (this.epoch !== null && this.seq !== null) {
      params.set("epoch", this.epoch);
      params.set("resume_after", String(this.seq));
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/stream?${params}`);
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 0;
      this.onConnection("open");
    };
    socket.onmessage = (event) => {
      const text = String(event.data);
      this.stats.messages += 1;
      this.stats.bytes += text.length;
      const message = JSON.parse(text) as LiveMessage;
      if (message.type === "snapshot") {
        this.epoch = message.epoch;
        this.seq = message.seq;
      } else if (message.type === "resumed") {
        this.epoch = message.epoch;
      } else if ("seq" in message && typeof message.seq === "number") {
        this.seq = Math.max(this.seq ?? 0, message.seq);
      }
      if (message.type === "positions") this.stats.positions += message.positions.length;
      this.onMessage(message);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onConnection("closed");
      if (this.stopped) return;
      if (event.code === 4001) return; // the session ended: the app signs out
      const delay = Math.min(10_000, 500 * 2 ** this.retry) * (0.75 + Math.random() * 0.5);
      this.retry += 1;
      this.timer = window.setTimeout(() => this.connect(), delay);
    };
  }
}
