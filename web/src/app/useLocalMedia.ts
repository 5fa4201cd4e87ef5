// The local camera and microphone as React state: preview stream, device pickers' choices
// and mute toggles. Muting disables the track (peers get black/silence, no renegotiation).

import { useCallback, useEffect, useRef, useState } from 'react';

import { listDevices, openMedia, stopStream, type Devices } from './media';

export interface LocalMedia {
  stream: MediaStream | null;
  error: string | null;
  devices: Devices;
  cameraId: string;
  microphoneId: string;
  cameraOn: boolean;
  microphoneOn: boolean;
  chooseCamera(id: string): void;
  chooseMicrophone(id: string): void;
  toggleCamera(): void;
  toggleMicrophone(): void;
}

function trackId(stream: MediaStream, kind: 'video' | 'audio'): string {
  const track = stream.getTracks().find((t) => t.kind === kind);
  return track?.getSettings().deviceId ?? '';
}

export function useLocalMedia(): LocalMedia {
  const [stream, setStream] = useState<MediaStream | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [devices, setDevices] = useState<Devices>({ cameras: [], microphones: [] });
  const [cameraId, setCameraId] = useState('');
  const [microphoneId, setMicrophoneId] = useState('');
  const [cameraOn, setCameraOn] = useState(true);
  const [microphoneOn, setMicrophoneOn] = useState(true);
  const current = useRef<MediaStream | null>(null);
  const enabled = useRef({ video: true, audio: true });

  const open = useCallback(async (camera?: string, microphone?: string) => {
    if (!navigator.mediaDevices?.getUserMedia) {
      setError('This browser gives no access to a camera or microphone here (it needs https or localhost).');
      return;
    }
    try {
      const next = await openMedia(camera, microphone);
      for (const track of next.getTracks()) track.enabled = enabled.current[track.kind as 'video' | 'audio'];
      stopStream(current.current);
      current.current = next;
      setStream(next);
      setError(null);
      setCameraId(trackId(next, 'video'));
      setMicrophoneId(trackId(next, 'audio'));
      setDevices(await listDevices()); // labels are only known once permission is granted
    } catch (failure) {
      setError(`Camera/microphone unavailable: ${failure instanceof Error ? failure.message : String(failure)}. `
        + 'You can still join, without media.');
    }
  }, []);

  useEffect(() => {
    void open();
    return () => stopStream(current.current);
  }, [open]);

  const toggle = (kind: 'video' | 'audio', set: (on: boolean) => void): void => {
    enabled.current[kind] = !enabled.current[kind];
    for (const track of current.current?.getTracks() ?? []) {
      if (track.kind === kind) track.enabled = enabled.current[kind];
    }
    set(enabled.current[kind]);
  };

  return {
    stream, error, devices, cameraId, microphoneId, cameraOn, microphoneOn,
    chooseCamera: (id) => void open(id, microphoneId || undefined),
    chooseMicrophone: (id) => void open(cameraId || undefined, id),
    toggleCamera: () => toggle('video', setCameraOn),
    toggleMicrophone: () => toggle('audio', setMicrophoneOn),
  };
}
