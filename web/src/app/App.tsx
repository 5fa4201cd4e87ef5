// The app: a lobby (room, name, camera/mic preview) and the call. The room is the URL
// hash (/#room-id), so the address bar is the invitation link.

import { useEffect, useMemo, useState, useSyncExternalStore, type FormEvent } from 'react';

import { isValidId } from '../signaling';
import { Call } from './call';
import { ChatPanel, InviteLink, MediaControls, PeerStatus, StatusBanner, Video } from './components';
import { loadSession, newRoomId } from './session';
import { useLocalMedia, type LocalMedia } from './useLocalMedia';

declare global {
  interface Window {
    /** The live call, for the console and the end-to-end tests. */
    signalingApp?: { call: Call | null };
  }
}

function roomFromHash(): string {
  return decodeURIComponent(location.hash.slice(1));
}

export function App() {
  const media = useLocalMedia();
  const [hashRoom, setHashRoom] = useState(roomFromHash);
  // A reload in the middle of a call goes straight back into it (same seat, same token).
  const [call, setCall] = useState<Call | null>(() => {
    const room = roomFromHash();
    return isValidId(room) && loadSession(room) ? new Call({ roomId: room }) : null;
  });

  useEffect(() => {
    const onHash = () => setHashRoom(roomFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    if (call && hashRoom !== call.roomId) {
      call.leave(); // an invite link to another room was opened in this tab
      setCall(null);
    }
  }, [hashRoom, call]);

  useEffect(() => {
    if (!call) return;
    window.signalingApp = { call };
    void call.start();
    // A clean close when the tab goes away, so the others see us leave (or come back)
    // at once instead of after the server's reconnect grace.
    const onHide = () => call.hide();
    // Back from the back/forward cache: the socket was closed on the way out; start over.
    const onShow = (event: PageTransitionEvent) => {
      if (event.persisted) location.reload();
    };
    window.addEventListener('pagehide', onHide);
    window.addEventListener('pageshow', onShow);
    return () => {
      window.removeEventListener('pagehide', onHide);
      window.removeEventListener('pageshow', onShow);
      window.signalingApp = { call: null };
    };
  }, [call]);

  useEffect(() => {
    call?.setLocalStream(media.stream);
  }, [call, media.stream]);

  const join = (roomId: string, clientId: string) => {
    history.replaceState(null, '', `#${roomId}`);
    setHashRoom(roomId);
    setCall(new Call({ roomId, clientId: clientId || undefined }));
  };
  const leave = () => {
    call?.leave();
    setCall(null);
  };

  return (
    <main>
      <h1>Video call</h1>
      {call
        ? <CallView call={call} media={media} onLeave={leave} />
        : <Lobby initialRoom={hashRoom} media={media} onJoin={join} />}
    </main>
  );
}

function Lobby({ initialRoom, media, onJoin }:
  { initialRoom: string; media: LocalMedia; onJoin: (roomId: string, clientId: string) => void }) {
  const suggested = useMemo(() => (isValidId(initialRoom) ? initialRoom : newRoomId()), [initialRoom]);
  const [roomId, setRoomId] = useState(suggested);
  const [name, setName] = useState('');
  useEffect(() => setRoomId(suggested), [suggested]);
  const roomOk = isValidId(roomId);
  const nameOk = name === '' || isValidId(name);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (roomOk && nameOk) onJoin(roomId, name);
  };
  return (
    <section aria-labelledby="lobby-heading" data-testid="lobby">
      <h2 id="lobby-heading">Join a room</h2>
      <form onSubmit={submit} className="join-form">
        <label>
          Room{' '}
          <input data-testid="room-input" value={roomId} onChange={(e) => setRoomId(e.target.value.trim())}
            aria-invalid={!roomOk} required />
        </label>
        <label>
          Your name (optional){' '}
          <input data-testid="name-input" value={name} onChange={(e) => setName(e.target.value.trim())}
            aria-invalid={!nameOk} placeholder="picked for you" />
        </label>
        <button type="submit" data-testid="join-button" disabled={!roomOk || !nameOk}>Join</button>
        {(!roomOk || !nameOk) && (
          <p className="error" role="alert">Room and name: 1 to 64 letters, digits, _ or -.</p>
        )}
      </form>
      <Video stream={media.stream} muted label="Preview" testId="local-video" />
      <MediaControls media={media} />
    </section>
  );
}

function CallView({ call, media, onLeave }: { call: Call; media: LocalMedia; onLeave: () => void }) {
  const snap = useSyncExternalStore((notify) => call.on('change', notify), () => call.current);
  const canSend = snap.peers.some((peer) => peer.state.chatOpen);
  return (
    <section aria-labelledby="call-heading" data-testid="call">
      <h2 id="call-heading">
        Room <span data-testid="room-id">{snap.roomId}</span>
        {snap.clientId && <> · you are <span data-testid="client-id">{snap.clientId}</span></>}
      </h2>
      <StatusBanner status={snap.status} message={snap.statusMessage} code={snap.statusCode} />
      <InviteLink roomId={snap.roomId} />
      <div className="tiles" data-testid="tiles">
        <Video stream={media.stream} muted label="You" testId="local-video" />
        {snap.peers.map((peer) => (
          <div key={peer.id} className="peer" data-testid={`peer-${peer.id}`}>
            <Video stream={peer.stream} label={peer.id} testId={`remote-video-${peer.id}`} />
            <PeerStatus id={peer.id} state={peer.state} />
          </div>
        ))}
      </div>
      {!snap.peers.length && snap.status === 'open' && (
        <p className="muted" data-testid="alone">Nobody else here yet: share the invite link.</p>
      )}
      <MediaControls media={media} />
      <ChatPanel lines={snap.chat} canSend={canSend} onSend={(text) => call.sendChat(text)} />
      <section aria-labelledby="events-heading">
        <h2 id="events-heading">Events</h2>
        <ul className="events" data-testid="events">
          {snap.notices.map((line, i) => <li key={i}>{line}</li>)}
        </ul>
      </section>
      <button type="button" data-testid="leave-button" onClick={onLeave}>Leave</button>
    </section>
  );
}
