// The call in one room, without React: the REST join (with retries), the signaling
// client, one PeerCall per remote peer (mesh), the local media and the chat. Components
// read immutable snapshots of it (useSyncExternalStore) and call its methods.

import {
  Emitter, JoinError, PeerCall, SignalingClient, backoffDelay, frameErrorMessage, joinRoom,
  type ConnectionState, type JoinAnswer, type PeerState,
} from '../signaling';
import { forgetSession, loadSession, saveSession } from './session';

export interface RemotePeer {
  id: string;
  state: PeerState;
  stream: MediaStream | null;
}

export interface ChatLine {
  id: number;
  from: string; // 'me' for our own lines
  text: string;
}

export interface CallSnapshot {
  roomId: string;
  clientId: string | null;
  status: ConnectionState;
  /** What to tell the user about the connection to the server (errors, reconnects). */
  statusMessage: string;
  /** Close code or REST error code behind statusMessage. */
  statusCode: string | null;
  peers: RemotePeer[];
  chat: ChatLine[];
  notices: string[];
}

export interface CallOptions {
  roomId: string;
  /** The name to join as; empty: the server picks one. */
  clientId?: string;
  apiKey?: string;
  join?: typeof joinRoom;
}

const JOIN_MIN_DELAY = 1000;
const JOIN_MAX_DELAY = 15000;
const MAX_NOTICES = 50;

export class Call extends Emitter<{ change: CallSnapshot }> {
  readonly roomId: string;
  private readonly wantedId: string;
  private readonly apiKey?: string;
  private readonly join: typeof joinRoom;
  private signaling: SignalingClient | null = null;
  private rtcConfig: RTCConfiguration = { iceServers: [] };
  private readonly calls = new Map<string, PeerCall>();
  private readonly streams = new Map<string, MediaStream>();
  private localStream: MediaStream | null = null;
  private chat: ChatLine[] = [];
  private notices: string[] = [];
  private status: ConnectionState = 'idle';
  private statusMessage = '';
  private statusCode: string | null = null;
  private nextLine = 1;
  private left = false;
  private started = false;
  private joinTimer: ReturnType<typeof setTimeout> | undefined;
  private snap: CallSnapshot;

  constructor(options: CallOptions) {
    super();
    this.roomId = options.roomId;
    this.wantedId = options.clientId ?? '';
    this.apiKey = options.apiKey;
    this.join = options.join ?? joinRoom;
    this.snap = this.snapshot();
  }

  get current(): CallSnapshot {
    return this.snap;
  }

  get clientId(): string | null {
    return this.signaling?.clientId ?? null;
  }

  /** The PeerCall to a peer (for the console and the end-to-end tests' getStats). */
  peerCall(peerId: string): PeerCall | undefined {
    return this.calls.get(peerId);
  }

  async start(attempt = 0): Promise<void> {
    if (this.left || (attempt === 0 && this.started)) return; // idempotent (React's StrictMode runs effects twice)
    this.started = true;
    this.setStatus('connecting', 'Joining the room…', null);
    let answer: JoinAnswer | null = loadSession(this.roomId);
    if (answer && this.wantedId && answer.clientId !== this.wantedId) answer = null;
    if (!answer) {
      try {
        answer = await this.join({ roomId: this.roomId, clientId: this.wantedId || undefined, apiKey: this.apiKey });
      } catch (error) {
        this.joinFailed(error, attempt);
        return;
      }
    }
    if (this.left) return;
    saveSession(answer);
    this.rtcConfig = { iceServers: answer.iceServers };
    const clientId = answer.clientId;
    const signaling = (this.signaling = new SignalingClient({
      roomId: this.roomId,
      clientId,
      token: answer.token,
      // After a 4401 (token expired, or a server that no longer knows our token):
      // our own REST join for the same seat gives a fresh one.
      renewToken: async () => {
        const renewed = await this.join({ roomId: this.roomId, clientId, apiKey: this.apiKey });
        saveSession(renewed);
        return renewed.token;
      },
    }));
    signaling.on('status', ({ state, code, delay, message }) => {
      if (state === 'open') this.setStatus(state, 'Connected', null);
      else if (state === 'reconnecting') {
        const when = delay ? ` (next try in ${(delay / 1000).toFixed(1)} s)` : '';
        this.setStatus(state, `${message ?? 'Reconnecting…'}${when}`, code ? String(code) : null);
      } else if (state === 'closed') {
        if (code !== 1000) forgetSession(this.roomId); // a refused seat is not worth reusing
        this.setStatus(state, message ?? 'Disconnected.', code ? String(code) : null);
      } else if (this.status !== 'reconnecting') {
        this.setStatus(state, 'Connecting…', null); // while reconnecting, the banner keeps saying why
      }
    });
    signaling.on('joined', ({ peers }) => {
      // The newcomer calls everyone already here; they answer. After a reconnect, calls
      // we already have are kept: media flows peer to peer and outlives a signaling
      // outage. A peer that really left gets peer-left.
      for (const peerId of peers) this.callFor(peerId);
    });
    // A peer-joined for a peer we still have a call with is kept as is: after a server
    // restart everyone comes back in random order and the media never stopped. A peer
    // that reloaded shows itself by its offer's new session instead (see `signal`).
    signaling.on('peer-joined', ({ clientId: peerId }) => this.notice(`${peerId} joined`));
    signaling.on('peer-left', ({ clientId: peerId }) => {
      this.notice(`${peerId} left`);
      this.dropCall(peerId);
    });
    signaling.on('signal', ({ type, from, data }) => {
      const existing = this.calls.get(from);
      // The peer reloaded and took its seat back with its token (no presence change):
      // its offer belongs to a new session, so start our side afresh.
      if (existing && existing.isNewSession(data as RTCSessionDescriptionInit)) this.dropCall(from);
      void this.callFor(from).handle(type, data);
    });
    signaling.on('error', (error) => this.notice(frameErrorMessage(error)));
    signaling.connect();
    this.changed();
  }

  /** Leave for good: a clean close, so the others see us leave at once. */
  leave(): void {
    this.left = true;
    clearTimeout(this.joinTimer);
    forgetSession(this.roomId);
    this.signaling?.close();
    for (const peerId of [...this.calls.keys()]) this.dropCall(peerId);
    this.changed();
  }

  /** The tab goes away (reload, close): a clean close, but keep the seat for a reload. */
  hide(): void {
    this.signaling?.close();
  }

  setLocalStream(stream: MediaStream | null): void {
    this.localStream = stream;
    if (stream) for (const call of this.calls.values()) call.setStream(stream);
  }

  sendChat(text: string): boolean {
    const sent = [...this.calls.values()].filter((call) => call.send(text)).length;
    if (sent) this.addLine('me', text);
    return sent > 0;
  }

  private joinFailed(error: unknown, attempt: number): void {
    const failure = error instanceof JoinError ? error : new JoinError('network-error', 0, String(error));
    if (failure.code === 'client-id-taken' && !this.wantedId && attempt === 0) {
      // Our saved seat is still held (we vanished without a clean close): a new id.
      forgetSession(this.roomId);
      void this.start(attempt + 1);
      return;
    }
    if (!failure.retryable) {
      this.setStatus('closed', failure.userMessage, failure.code);
      return;
    }
    const delay = backoffDelay(attempt, JOIN_MIN_DELAY, JOIN_MAX_DELAY, Math.random());
    this.setStatus('reconnecting', `${failure.userMessage} (next try in ${(delay / 1000).toFixed(1)} s)`, failure.code);
    this.joinTimer = setTimeout(() => void this.start(attempt + 1), delay);
  }

  private callFor(peerId: string): PeerCall {
    let call = this.calls.get(peerId);
    if (call) return call;
    const signaling = this.signaling as SignalingClient;
    // Both sides must agree on who is polite without talking: compare the ids.
    call = new PeerCall(signaling, peerId, { polite: signaling.clientId < peerId, rtcConfig: this.rtcConfig });
    const current = call;
    call.on('state', () => this.changed());
    call.on('message', ({ text }) => this.addLine(peerId, text));
    call.on('track', ({ track, streams }) => {
      const stream = streams[0] ?? this.streams.get(peerId) ?? new MediaStream();
      if (!stream.getTracks().includes(track)) stream.addTrack(track);
      if (this.calls.get(peerId) === current) this.streams.set(peerId, stream);
      this.changed();
    });
    call.on('failure', ({ error }) => this.notice(`Call with ${peerId}: ${String(error)}`));
    if (this.localStream) call.setStream(this.localStream);
    this.calls.set(peerId, call);
    this.changed();
    return call;
  }

  private dropCall(peerId: string): void {
    this.calls.get(peerId)?.close();
    this.calls.delete(peerId);
    this.streams.delete(peerId);
    this.changed();
  }

  private addLine(from: string, text: string): void {
    this.chat = [...this.chat, { id: this.nextLine++, from, text }];
    this.changed();
  }

  private notice(text: string): void {
    this.notices = [...this.notices.slice(-(MAX_NOTICES - 1)), `${new Date().toLocaleTimeString()} ${text}`];
    this.changed();
  }

  private setStatus(status: ConnectionState, message: string, code: string | null): void {
    if (status !== this.status || message !== this.statusMessage) {
      if (status !== 'open' && status !== 'connecting') this.notice(message);
    }
    this.status = status;
    this.statusMessage = message;
    this.statusCode = code;
    this.changed();
  }

  private snapshot(): CallSnapshot {
    return {
      roomId: this.roomId,
      clientId: this.clientId,
      status: this.status,
      statusMessage: this.statusMessage,
      statusCode: this.statusCode,
      peers: [...this.calls.values()].map((call) => ({
        id: call.peerId, state: call.state, stream: this.streams.get(call.peerId) ?? null,
      })),
      chat: this.chat,
      notices: this.notices,
    };
  }

  private changed(): void {
    this.snap = this.snapshot();
    this.emit('change', this.snap);
  }
}
