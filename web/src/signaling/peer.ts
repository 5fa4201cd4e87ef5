// One RTCPeerConnection to one remote peer, negotiated with the "perfect negotiation"
// pattern (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): either side
// may change the session at any time; when both offer at once, the polite peer rolls
// back and answers, the impolite one ignores the colliding offer. ICE candidates trickle
// through the signaling server one frame each.
//
// The chat channel is pre-negotiated (same id on both sides), so both ends create it
// symmetrically and neither has to wait for `datachannel`.

import { Emitter } from './emitter';
import type { Id, SignalType } from './protocol';

/** The part of SignalingClient a call needs. */
export interface SignalSender {
  send(type: SignalType, to: Id | undefined, data: object): void;
}

export interface PeerState {
  signaling: RTCSignalingState;
  ice: RTCIceConnectionState;
  /** The DTLS transport's state ('new' until one exists). */
  dtls: RTCDtlsTransportState;
  connection: RTCPeerConnectionState;
  chatOpen: boolean;
}

export interface PeerEvents {
  state: PeerState;
  message: { text: string };
  track: { track: MediaStreamTrack; streams: readonly MediaStream[] };
  failure: { error: unknown };
}

export interface PeerCallOptions {
  polite: boolean;
  rtcConfig?: RTCConfiguration;
  /** For tests: how to make the RTCPeerConnection. */
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection;
}

/** The o= line's session id of an SDP: a new one means the remote restarted from scratch. */
export function sdpSessionId(sdp: string | undefined): string | null {
  const match = /^o=\S+ (\S+) /m.exec(sdp ?? '');
  return match ? match[1] : null;
}

export class PeerCall extends Emitter<PeerEvents> {
  readonly peerId: Id;
  readonly polite: boolean;
  readonly pc: RTCPeerConnection;
  readonly channel: RTCDataChannel;
  candidatesSent = 0;
  endOfCandidatesReceived = 0;
  collisions = 0; // offers that crossed ours (glare), resolved by politeness

  private readonly signaling: SignalSender;
  private makingOffer = false;
  private ignoreOffer = false;
  private settingRemoteAnswer = false;
  private incoming: Promise<void> = Promise.resolve(); // signals applied one at a time, in order
  private watchedDtls: RTCDtlsTransport | null = null;

  constructor(signaling: SignalSender, peerId: Id, options: PeerCallOptions) {
    super();
    this.signaling = signaling;
    this.peerId = peerId;
    this.polite = options.polite;
    const config = options.rtcConfig ?? { iceServers: [] };
    const pc = (this.pc = options.createPeerConnection?.(config) ?? new RTCPeerConnection(config));

    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription(); // creates the offer itself (no createOffer race)
        const local = pc.localDescription;
        if (local) this.signaling.send(local.type as SignalType, peerId, local.toJSON() as object);
      } catch (error) {
        this.fail(error);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      // Trickle: every candidate in its own frame. The final `null` means
      // end-of-candidates, which the wire spells {"candidate": ""} (null is refused).
      if (candidate?.candidate) this.candidatesSent++;
      this.signaling.send('ice-candidate', peerId, candidate ? candidate.toJSON() : { candidate: '' });
    };
    pc.oniceconnectionstatechange = () => {
      // A changed network path (or a peer back from a reconnect) can strand ICE;
      // restartIce() fires negotiationneeded and renegotiates fresh credentials.
      if (pc.iceConnectionState === 'failed') pc.restartIce();
      this.emitState();
    };
    pc.onsignalingstatechange = () => this.emitState();
    pc.onconnectionstatechange = () => this.emitState();
    pc.ontrack = ({ track, streams }) => this.emit('track', { track, streams });

    this.channel = pc.createDataChannel('chat', { negotiated: true, id: 0 });
    this.channel.onopen = () => this.emitState();
    this.channel.onclose = () => this.emitState();
    this.channel.onmessage = ({ data }) => this.emit('message', { text: String(data) });
  }

  get state(): PeerState {
    const pc = this.pc;
    const dtls = pc.sctp?.transport ?? pc.getSenders().find((s) => s.transport)?.transport ?? null;
    return {
      signaling: pc.signalingState,
      ice: pc.iceConnectionState,
      dtls: dtls?.state ?? 'new',
      connection: pc.connectionState,
      chatOpen: this.channel.readyState === 'open',
    };
  }

  /** Whether an offer starts a new session (the peer reloaded) rather than renegotiating ours. */
  isNewSession(data: RTCSessionDescriptionInit): boolean {
    if (data.type !== 'offer') return false;
    const current = sdpSessionId(this.pc.remoteDescription?.sdp);
    return current !== null && current !== sdpSessionId(data.sdp);
  }

  /** Feed a signal from this peer; they are applied in arrival order. */
  handle(type: SignalType, data: RTCSessionDescriptionInit | RTCIceCandidateInit): Promise<void> {
    this.incoming = this.incoming.then(() => this.apply(type, data)).catch((error: unknown) => this.fail(error));
    return this.incoming;
  }

  private async apply(type: SignalType, data: RTCSessionDescriptionInit | RTCIceCandidateInit): Promise<void> {
    const pc = this.pc;
    if (pc.signalingState === 'closed') return;
    if (type === 'offer' || type === 'answer') {
      const description = data as RTCSessionDescriptionInit;
      const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswer);
      const collision = description.type === 'offer' && !readyForOffer;
      if (collision) this.collisions++;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = description.type === 'answer';
      try {
        await pc.setRemoteDescription(description); // rolls back our own offer implicitly on a collision
      } finally {
        this.settingRemoteAnswer = false;
      }
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        const local = pc.localDescription;
        if (local) this.signaling.send('answer', this.peerId, local.toJSON() as object);
      }
    } else {
      const candidate = data as RTCIceCandidateInit;
      const endOfCandidates = candidate.candidate === '';
      try {
        // {candidate: ""} is the spec's own end-of-candidates; pass it through as is.
        await pc.addIceCandidate(candidate);
        if (endOfCandidates) this.endOfCandidatesReceived++;
      } catch (error) {
        // Candidates of an offer we ignored are expected to fail; end-of-candidates is
        // only a hint, and some browsers reject it once ICE has completed.
        if (!this.ignoreOffer && !endOfCandidates) throw error;
      }
    }
    this.emitState();
  }

  /** Send local media to this peer: adds tracks (renegotiates by itself), or swaps a
   * track of the same kind in place (a device change needs no renegotiation). */
  setStream(stream: MediaStream): void {
    for (const track of stream.getTracks()) {
      const sender = this.pc.getSenders().find((s) => s.track?.kind === track.kind);
      if (!sender) this.pc.addTrack(track, stream);
      else if (sender.track !== track) void sender.replaceTrack(track).catch((error: unknown) => this.fail(error));
    }
  }

  send(text: string): boolean {
    if (this.channel.readyState !== 'open') return false;
    this.channel.send(text);
    return true;
  }

  close(): void {
    this.channel.close();
    this.pc.close();
    this.emitState();
  }

  private emitState(): void {
    const dtls = this.pc.sctp?.transport ?? null;
    if (dtls && dtls !== this.watchedDtls) {
      this.watchedDtls = dtls;
      dtls.addEventListener('statechange', () => this.emitState());
    }
    this.emit('state', this.state);
  }

  private fail(error: unknown): void {
    this.emit('failure', { error });
  }
}
