// The signaling WebSocket of one client in one room: presence events, signals, and
// reconnects with backoff that reuse the token (so the server gives back our own seat).

import { Emitter } from './emitter';
import {
  closeMeaning, type ErrorData, type Id, type JoinedData, type ServerFrame, type SignalFrame, type SignalType,
} from './protocol';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StatusEvent {
  state: ConnectionState;
  code?: number;
  reason?: string;
  /** Milliseconds until the next attempt (reconnecting). */
  delay?: number;
  /** What to tell the user, for reconnecting and closed. */
  message?: string;
}

export interface SignalingEvents {
  joined: JoinedData;
  'peer-joined': { clientId: Id };
  'peer-left': { clientId: Id };
  signal: SignalFrame;
  /** The server refused our last frame; still connected. */
  error: ErrorData;
  status: StatusEvent;
}

/** The part of the WebSocket constructor we use: tests pass a fake. */
export type WebSocketFactory = (url: string) => WebSocket;

export interface SignalingOptions {
  roomId: Id;
  clientId: Id;
  token?: string;
  /** Asked once after a 4401 (e.g. the token expired): a fresh token for the same seat. */
  renewToken?: () => Promise<string>;
  /** ws(s)://host/ws; default: the page's own origin. */
  url?: string;
  minDelay?: number;
  maxDelay?: number;
  createSocket?: WebSocketFactory;
  random?: () => number;
}

const OUTBOX_LIMIT = 256; // frames kept while reconnecting; trickled ICE is the bulk of it
const OPEN = 1; // WebSocket.OPEN, without needing the global in tests

/** Exponential backoff with jitter in [ceiling/2, ceiling], so a restarted server is
 * not hit by every client at the same instant. */
export function backoffDelay(attempt: number, minDelay: number, maxDelay: number, random: number): number {
  const ceiling = Math.min(maxDelay, minDelay * 2 ** attempt);
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}

export function defaultSocketUrl(): string {
  const { protocol, host } = globalThis.location;
  return `${protocol === 'https:' ? 'wss' : 'ws'}://${host}/ws`;
}

export class SignalingClient extends Emitter<SignalingEvents> {
  readonly roomId: Id;
  readonly clientId: Id;
  token: string | undefined;
  state: ConnectionState = 'idle';
  /** True between `joined` and the next close: frames go out at once. */
  ready = false;

  private readonly renewToken?: () => Promise<string>;
  private readonly url: string;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private readonly createSocket: WebSocketFactory;
  private readonly random: () => number;
  private ws: WebSocket | null = null;
  private attempt = 0;
  private stopped = false;
  private renewable = false; // one token renewal allowed since the last `joined`
  private outbox: string[] = [];
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: SignalingOptions) {
    super();
    this.roomId = options.roomId;
    this.clientId = options.clientId;
    this.token = options.token;
    this.renewToken = options.renewToken;
    this.renewable = Boolean(options.renewToken);
    this.url = options.url ?? defaultSocketUrl();
    this.minDelay = options.minDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 15000;
    this.createSocket = options.createSocket ?? ((url) => new WebSocket(url));
    this.random = options.random ?? Math.random;
  }

  connect(): void {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    const query = new URLSearchParams({ roomId: this.roomId, clientId: this.clientId });
    if (this.token) query.set('token', this.token);
    const ws = (this.ws = this.createSocket(`${this.url}?${query}`));
    this.setStatus({ state: 'connecting' });
    ws.onmessage = (event: MessageEvent) => this.receive(ws, event.data);
    ws.onclose = (event: CloseEvent) => this.closed(ws, event.code, event.reason);
  }

  /** Send a signal; `to` undefined broadcasts to the room. Queued (bounded) while away. */
  send(type: SignalType, to: Id | undefined, data: object): void {
    const frame = JSON.stringify(to === undefined ? { type, data } : { type, to, data });
    if (this.ready && this.ws?.readyState === OPEN) {
      this.ws.send(frame);
    } else if (!this.stopped) {
      if (this.outbox.length >= OUTBOX_LIMIT) this.outbox.shift();
      this.outbox.push(frame);
    }
  }

  /** Leave for good: a clean close, so the others get peer-left at once. */
  close(): void {
    this.stopped = true;
    this.ready = false;
    clearTimeout(this.retryTimer);
    this.outbox = [];
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.close(1000, 'bye');
    }
    this.setStatus({ state: 'closed', code: 1000, message: 'Left the room.' });
  }

  private receive(ws: WebSocket, text: unknown): void {
    if (ws !== this.ws || typeof text !== 'string') return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return; // the server only sends JSON; ignore anything else rather than die
    }
    switch (frame.type) {
      case 'joined':
        this.ready = true;
        this.attempt = 0;
        this.renewable = Boolean(this.renewToken);
        this.setStatus({ state: 'open' });
        this.emit('joined', frame.data);
        // Signals produced while we were away go out only now, after the app has
        // reconciled its calls with the fresh peer list.
        for (const queued of this.outbox.splice(0)) ws.send(queued);
        break;
      case 'peer-joined':
      case 'peer-left':
        this.emit(frame.type, frame.data);
        break;
      case 'error':
        this.emit('error', frame.data);
        break;
      case 'offer':
      case 'answer':
      case 'ice-candidate':
        this.emit('signal', { type: frame.type, from: frame.from, data: frame.data });
        break;
    }
  }

  private closed(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ready = false;
    const meaning = closeMeaning(code, reason);
    if (meaning.renewToken && this.renewable && this.renewToken && !this.stopped) {
      this.renewable = false;
      this.setStatus({ state: 'reconnecting', code, reason, delay: 0, message: 'Renewing the token…' });
      this.renewToken().then(
        (token) => {
          this.token = token;
          if (!this.stopped) this.connect();
        },
        (error: unknown) => {
          this.stopped = true;
          this.setStatus({ state: 'closed', code, reason, message: `${meaning.message} (no new token: ${String(error)})` });
        },
      );
      return;
    }
    if (this.stopped || !meaning.retryable) {
      this.stopped = true;
      this.outbox = [];
      this.setStatus({ state: 'closed', code, reason, message: meaning.message });
      return;
    }
    const delay = backoffDelay(this.attempt++, this.minDelay, this.maxDelay, this.random());
    this.setStatus({ state: 'reconnecting', code, reason, delay, message: meaning.message });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private setStatus(status: StatusEvent): void {
    this.state = status.state;
    this.emit('status', status);
  }
}
