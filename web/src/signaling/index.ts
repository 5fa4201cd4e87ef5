// The signaling client without React: REST join, the WebSocket with reconnects, and one
// perfectly negotiated RTCPeerConnection per remote peer. Apps can reuse it as is.

export * from './protocol';
export { JoinError, joinRoom, tokenExpiry, type JoinOptions } from './rest';
export {
  SignalingClient, backoffDelay, defaultSocketUrl,
  type ConnectionState, type SignalingEvents, type SignalingOptions, type StatusEvent, type WebSocketFactory,
} from './client';
export { PeerCall, sdpSessionId, type PeerCallOptions, type PeerEvents, type PeerState, type SignalSender } from './peer';
export { Emitter, type Listener } from './emitter';
