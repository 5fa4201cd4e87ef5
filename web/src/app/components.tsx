// The app's small presentational pieces. Each carries stable data-testid attributes for
// the tests, and plain labels and live regions for screen readers.

import { useEffect, useRef, useState, type FormEvent } from 'react';

import type { ConnectionState, PeerState } from '../signaling';
import type { ChatLine } from './call';
import type { LocalMedia } from './useLocalMedia';

export function Video({ stream, muted, label, testId }:
  { stream: MediaStream | null; muted?: boolean; label: string; testId: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const video = ref.current;
    if (video && video.srcObject !== stream) video.srcObject = stream;
  }, [stream]);
  return (
    <figure className="tile">
      <video ref={ref} data-testid={testId} autoPlay playsInline muted={muted} aria-label={label} />
      <figcaption>{label}</figcaption>
    </figure>
  );
}

export function MediaControls({ media }: { media: LocalMedia }) {
  return (
    <div className="controls" data-testid="media-controls">
      <label>
        Camera{' '}
        <select data-testid="camera-select" value={media.cameraId} onChange={(e) => media.chooseCamera(e.target.value)}
          disabled={!media.devices.cameras.length}>
          {media.devices.cameras.map((d, i) => (
            <option key={d.deviceId || i} value={d.deviceId}>{d.label || `Camera ${i + 1}`}</option>
          ))}
        </select>
      </label>
      <label>
        Microphone{' '}
        <select data-testid="microphone-select" value={media.microphoneId}
          onChange={(e) => media.chooseMicrophone(e.target.value)} disabled={!media.devices.microphones.length}>
          {media.devices.microphones.map((d, i) => (
            <option key={d.deviceId || i} value={d.deviceId}>{d.label || `Microphone ${i + 1}`}</option>
          ))}
        </select>
      </label>
      {/* Toggle buttons keep their label; aria-pressed says whether it is in effect. */}
      <button type="button" data-testid="toggle-camera" aria-pressed={!media.cameraOn} onClick={media.toggleCamera}
        disabled={!media.stream}>
        Camera off
      </button>
      <button type="button" data-testid="toggle-microphone" aria-pressed={!media.microphoneOn}
        onClick={media.toggleMicrophone} disabled={!media.stream}>
        Mute
      </button>
      {media.error && <p className="error" role="alert" data-testid="media-error">{media.error}</p>}
    </div>
  );
}

export function StatusBanner({ status, message, code }:
  { status: ConnectionState; message: string; code: string | null }) {
  const kind = status === 'open' ? 'ok' : status === 'closed' ? 'error' : 'warn';
  return (
    <p className={`status ${kind}`} role="status" aria-live="polite" data-testid="status" data-state={status}
      data-code={code ?? ''}>
      {message || status}
    </p>
  );
}

export function PeerStatus({ id, state }: { id: string; state: PeerState }) {
  return (
    <dl className="peer-state" data-testid={`peer-state-${id}`} data-connection={state.connection}>
      <dt>Signaling</dt><dd data-testid="signaling-state">{state.signaling}</dd>
      <dt>ICE</dt><dd data-testid="ice-state">{state.ice}</dd>
      <dt>DTLS</dt><dd data-testid="dtls-state">{state.dtls}</dd>
      <dt>Chat</dt><dd>{state.chatOpen ? 'open' : 'not open'}</dd>
    </dl>
  );
}

export function ChatPanel({ lines, canSend, onSend }:
  { lines: ChatLine[]; canSend: boolean; onSend: (text: string) => boolean }) {
  const [text, setText] = useState('');
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    if (list.current) list.current.scrollTop = list.current.scrollHeight; // follow the newest line
  }, [lines]);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const trimmed = text.trim();
    if (trimmed && onSend(trimmed)) setText('');
  };
  return (
    <section aria-labelledby="chat-heading" className="chat">
      <h2 id="chat-heading">Chat <span className="muted">(peer to peer, over a data channel)</span></h2>
      <ol ref={list} data-testid="chat-log" aria-live="polite">
        {lines.map((line) => (
          <li key={line.id} data-testid="chat-line"><b>{line.from}:</b> {line.text}</li>
        ))}
      </ol>
      <form onSubmit={submit}>
        <label className="visually-hidden" htmlFor="chat-input">Message</label>
        <input id="chat-input" data-testid="chat-input" value={text} maxLength={1000} autoComplete="off"
          placeholder={canSend ? 'Say something' : 'Chat opens once someone is connected'}
          onChange={(e) => setText(e.target.value)} />
        <button type="submit" data-testid="chat-send" disabled={!canSend || !text.trim()}>Send</button>
      </form>
    </section>
  );
}

export function InviteLink({ roomId }: { roomId: string }) {
  const link = `${location.origin}${location.pathname}#${roomId}`;
  const [copied, setCopied] = useState<string>('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link);
      setCopied('Link copied');
    } catch {
      setCopied('Copy failed: select the link and copy it by hand');
    }
  };
  return (
    <p className="invite">
      Invite link: <a href={link} data-testid="invite-link">{link}</a>{' '}
      <button type="button" data-testid="copy-invite" onClick={() => void copy()}>Copy invite link</button>{' '}
      <span role="status" data-testid="copy-result">{copied}</span>
    </p>
  );
}
