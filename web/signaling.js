// Browser side of the signaling protocol (docs/protocol.md), with no dependencies.
//
//   joinRoom()       optional REST join: reserves the clientId, returns a token and iceServers
//   SignalingClient  the WebSocket: presence events, signals, reconnect with backoff
//   PeerCall         one RTCPeerConnection per remote peer, "perfect negotiation" + trickle ICE

// Close codes worth retrying (protocol.md, "Close codes"): the server went away (1001),
// the network dropped (1006), a proxy restarted (1012), we read too slowly (1013), the
// room crashed and is rebuilt on next use (4500), the process is full for now (4503).
// Everything else (4400 bad ids, 4401/4403 token, 4409 id taken, 4410 replaced by our own
// newer connection, 4429 room full, 1008/1009 our own misbehaviour) would fail the same
// way again, so we stop and report it.
export const RETRYABLE_CLOSE_CODES = new Set([1001, 1006, 1012, 1013, 4500, 4503]);

const OUTBOX_LIMIT = 256; // frames kept while reconnecting; trickled ICE is the bulk of it

/** POST /rooms/{roomId}/join. Resolves to {roomId, clientId, token, iceServers}. */
export async function joinRoom(roomId, clientId, { base = location.origin, apiKey } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const body = clientId ? { clientId } : {};
  const response = await fetch(new URL(`/rooms/${encodeURIComponent(roomId)}/join`, base),
    { method: 'POST', headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = answer.error || { code: `http-${response.status}`, message: response.statusText };
    throw Object.assign(new Error(`${error.code}: ${error.message}`), { code: error.code, status: response.status });
  }
  return answer;
}

/**
 * The signaling WebSocket of one client in one room.
 *
 * Events (CustomEvent, payload in `detail`):
 *   joined      {roomId, clientId, peers}   after every (re)connect
 *   peer-joined {clientId}
 *   peer-left   {clientId}
 *   signal      {type, from, data}          offer / answer / ice-candidate
 *   error       {code, message}             the server refused our last frame; still connected
 *   status      {state, code?, reason?, delay?}  connecting | open | reconnecting | closed
 */
export class SignalingClient extends EventTarget {
  // renewToken: optional async () => token, asked once after a 4401 on a reconnect. A
  // server that restarted (or a different backend) may not accept the old token: in open
  // mode each process signs with its own random key. joinRoom() is one way to get a new one.
  constructor({ roomId, clientId, token, renewToken, url = defaultUrl(), minDelay = 500, maxDelay = 15000 }) {
    super();
    Object.assign(this, { roomId, clientId, token, renewToken, url, minDelay, maxDelay });
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.ready = false; // true between `joined` and the next close
    this.renewable = false; // one token renewal allowed since the last `joined`
    this.outbox = [];
    this.retryTimer = null;
  }

  connect() {
    this.stopped = false;
    const query = new URLSearchParams({ roomId: this.roomId, clientId: this.clientId });
    if (this.token) query.set('token', this.token);
    const ws = this.ws = new WebSocket(`${this.url}?${query}`);
    this._status({ state: 'connecting' });
    ws.onmessage = (event) => this._receive(event.data);
    ws.onclose = (event) => this._closed(ws, event);
  }

  /** Send a signal; `to` null broadcasts to the room. Queued (bounded) while reconnecting. */
  send(type, to, data) {
    const frame = JSON.stringify(to == null ? { type, data } : { type, to, data });
    if (this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(frame);
    } else if (!this.stopped) {
      if (this.outbox.length >= OUTBOX_LIMIT) this.outbox.shift();
      this.outbox.push(frame);
    }
  }

  /** Leave for good: a clean close, so the others get peer-left at once. */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.outbox = [];
    if (this.ws) this.ws.close(1000, 'bye');
  }

  _receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // the server only sends JSON; ignore anything else rather than die
    }
    const { type, data } = frame;
    if (type === 'joined') {
      this.ready = true;
      this.attempt = 0;
      this.renewable = Boolean(this.renewToken);
      this._status({ state: 'open' });
      this._emit('joined', data);
      // Signals produced while we were away go out only now, after the app has
      // reconciled its calls with the fresh peer list.
      for (const queued of this.outbox.splice(0)) this.ws.send(queued);
    } else if (type === 'peer-joined' || type === 'peer-left' || type === 'error') {
      this._emit(type, data);
    } else if (type === 'offer' || type === 'answer' || type === 'ice-candidate') {
      this._emit('signal', { type, from: frame.from, data });
    }
  }

  _closed(ws, { code, reason }) {
    if (ws !== this.ws) return;
    this.ready = false;
    if (code === 4401 && this.renewable && !this.stopped) {
      this.renewable = false;
      this._status({ state: 'reconnecting', code, reason, delay: 0 });
      this.renewToken().then((token) => { this.token = token; if (!this.stopped) this.connect(); },
        (error) => {
          this.stopped = true;
          this._status({ state: 'closed', code, reason: `${reason}; no new token: ${error.message}` });
        });
      return;
    }
    if (this.stopped || !RETRYABLE_CLOSE_CODES.has(code)) {
      this.stopped = true;
      this._status({ state: 'closed', code, reason });
      return;
    }
    // Exponential backoff with jitter, so a restarted server is not hit by every
    // client at the same instant.
    const ceiling = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt++);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    this._status({ state: 'reconnecting', code, reason, delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  _status(detail) {
    this.state = detail.state;
    this._emit('status', detail);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function defaultUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/**
 * One peer connection to one remote peer, negotiated with the "perfect negotiation"
 * pattern (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): either side
 * may change the session at any time; when both offer at once, the polite peer rolls
 * back and answers, the impolite one ignores the colliding offer.
 *
 * The chat channel is pre-negotiated (same id on both sides), so both ends create it
 * symmetrically and neither has to wait for `datachannel`.
 *
 * Events: state {connectionState}, open, message {text}, track {track, streams}, failure {error}
 */
export class PeerCall extends EventTarget {
  constructor(signaling, peerId, { polite, rtcConfig = { iceServers: [] } }) {
    super();
    this.signaling = signaling;
    this.peerId = peerId;
    this.polite = polite;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.incoming = Promise.resolve(); // signals are applied one at a time, in arrival order
    this.candidatesSent = 0;
    this.endOfCandidatesReceived = 0; // applied with addIceCandidate
    this.collisions = 0; // offers that crossed ours (glare), resolved by politeness

    const pc = this.pc = new RTCPeerConnection(rtcConfig);
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription(); // creates the offer itself (no createOffer race)
        this.signaling.send(pc.localDescription.type, peerId, pc.localDescription.toJSON());
      } catch (error) {
        this._fail(error);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      // Trickle: every candidate in its own frame. The final `null` means
      // end-of-candidates, which the wire spells {"candidate": ""} (null is refused).
      if (candidate && candidate.candidate) this.candidatesSent++;
      this.signaling.send('ice-candidate', peerId, candidate ? candidate.toJSON() : { candidate: '' });
    };
    pc.onconnectionstatechange = () => {
      this._emit('state', { connectionState: pc.connectionState });
    };
    pc.oniceconnectionstatechange = () => {
      // A changed network path (or a peer back from a reconnect) can strand ICE;
      // restartIce() fires negotiationneeded and renegotiates fresh credentials.
      if (pc.iceConnectionState === 'failed') pc.restartIce();
    };
    pc.ontrack = ({ track, streams }) => this._emit('track', { track, streams });

    this.channel = pc.createDataChannel('chat', { negotiated: true, id: 0 });
    this.channel.onopen = () => this._emit('open', {});
    this.channel.onmessage = ({ data }) => this._emit('message', { text: String(data) });
  }

  /** Feed a `signal` event from this peer. */
  handle(type, data) {
    this.incoming = this.incoming.then(() => this._apply(type, data)).catch((error) => this._fail(error));
    return this.incoming;
  }

  async _apply(type, data) {
    const pc = this.pc;
    if (pc.signalingState === 'closed') return;
    if (type === 'offer' || type === 'answer') {
      const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = data.type === 'offer' && !readyForOffer;
      if (collision) this.collisions++;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = data.type === 'answer';
      try {
        await pc.setRemoteDescription(data); // rolls back our own offer implicitly on a collision
      } finally {
        this.settingRemoteAnswer = false;
      }
      if (data.type === 'offer') {
        await pc.setLocalDescription();
        this.signaling.send('answer', this.peerId, pc.localDescription.toJSON());
      }
    } else if (type === 'ice-candidate') {
      const endOfCandidates = data.candidate === '';
      try {
        // {candidate: ""} is the spec's own end-of-candidates; pass it through as is.
        await pc.addIceCandidate(data);
        if (endOfCandidates) this.endOfCandidatesReceived++;
      } catch (error) {
        // Candidates of an offer we ignored are expected to fail; end-of-candidates is
        // only a hint, and some browsers reject it once ICE has completed.
        if (!this.ignoreOffer && !endOfCandidates) throw error;
      }
    }
  }

  /** Send local media (from getUserMedia) to this peer; renegotiates by itself. */
  addStream(stream) {
    const sending = new Set(this.pc.getSenders().map((sender) => sender.track));
    for (const track of stream.getTracks()) {
      if (!sending.has(track)) this.pc.addTrack(track, stream);
    }
  }

  send(text) {
    if (this.channel.readyState !== 'open') return false;
    this.channel.send(text);
    return true;
  }

  close() {
    this.channel.close();
    this.pc.close();
    this._emit('state', { connectionState: 'closed' });
  }

  _fail(error) {
    this._emit('failure', { error });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
