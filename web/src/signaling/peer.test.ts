import { describe, expect, it } from 'vitest';

import { FakePeerConnection } from './fakes';
import { PeerCall, sdpSessionId, type SignalSender } from './peer';
import type { SignalType } from './protocol';

interface Sent { type: SignalType; to: string | undefined; data: Record<string, unknown> }

/** Two calls wired through an in-memory "server" that delivers only when told to. */
function pair() {
  const queues: Record<string, Sent[]> = { alice: [], bob: [] };
  const sender = (name: string): SignalSender => ({
    send: (type, to, data) => queues[name].push({ type, to, data: data as Record<string, unknown> }),
  });
  const fakes: Record<string, FakePeerConnection> = {};
  const make = (name: string, peer: string, polite: boolean) => new PeerCall(sender(name), peer, {
    polite,
    createPeerConnection: () => (fakes[name] = new FakePeerConnection(`${name}-session`)) as unknown as RTCPeerConnection,
  });
  // Ids decide politeness in the app: alice < bob, so alice is polite.
  const calls = { alice: make('alice', 'bob', true), bob: make('bob', 'alice', false) };
  const deliver = async (from: 'alice' | 'bob') => {
    const to = from === 'alice' ? calls.bob : calls.alice;
    for (const frame of queues[from].splice(0)) await to.handle(frame.type, frame.data);
  };
  return { calls, fakes, queues, deliver };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('PeerCall (perfect negotiation)', () => {
  it('resolves glare: the impolite side ignores the crossing offer, the polite side rolls back and answers', async () => {
    const { calls, fakes, queues, deliver } = pair();
    fakes.alice.onnegotiationneeded?.();
    fakes.bob.onnegotiationneeded?.();
    await settle();
    expect(queues.alice.map((f) => f.type)).toEqual(['offer']);
    expect(queues.bob.map((f) => f.type)).toEqual(['offer']);
    // The offers cross in the server.
    await deliver('alice'); // bob (impolite) ignores alice's offer
    await deliver('bob'); // alice (polite) rolls back and answers bob's
    expect(calls.bob.collisions).toBe(1);
    expect(calls.alice.collisions).toBe(1);
    expect(queues.alice.map((f) => [f.type, f.to])).toEqual([['answer', 'bob']]);
    await deliver('alice');
    expect([fakes.alice.signalingState, fakes.bob.signalingState]).toEqual(['stable', 'stable']);
    expect(sdpSessionId(fakes.alice.remoteDescription?.sdp)).toBe('bob-session');
  });

  it('trickles each candidate in its own frame, and end-of-candidates as {"candidate": ""}', async () => {
    const { calls, fakes, queues, deliver } = pair();
    fakes.bob.onnegotiationneeded?.();
    await settle();
    const candidate = { candidate: 'candidate:1 1 udp 1 192.0.2.1 5000 typ host', sdpMid: '0' };
    fakes.bob.onicecandidate?.({ candidate: { ...candidate, toJSON: () => candidate } });
    fakes.bob.onicecandidate?.({ candidate: null });
    expect(queues.bob.map((f) => [f.type, f.to, f.data])).toEqual([
      ['offer', 'alice', expect.objectContaining({ type: 'offer' })],
      ['ice-candidate', 'alice', candidate],
      ['ice-candidate', 'alice', { candidate: '' }],
    ]);
    expect(calls.bob.candidatesSent).toBe(1);
    await deliver('bob');
    expect(fakes.alice.candidates).toEqual([candidate, { candidate: '' }]);
    expect(calls.alice.endOfCandidatesReceived).toBe(1);
  });

  it("swallows candidates of an offer it ignored, but reports other failures", async () => {
    const { calls, fakes, deliver } = pair();
    const failures: unknown[] = [];
    calls.bob.on('failure', ({ error }) => failures.push(error));
    fakes.alice.onnegotiationneeded?.();
    fakes.bob.onnegotiationneeded?.();
    await settle();
    fakes.alice.onicecandidate?.({ candidate: { candidate: 'candidate:x', toJSON: () => ({ candidate: 'candidate:x' }) } });
    await deliver('alice'); // bob ignores the offer, then its candidate fails quietly
    expect(failures).toEqual([]);
    // An answer out of the blue is a real failure.
    await calls.bob.handle('answer', { type: 'answer', sdp: 'v=0' });
    await calls.bob.handle('answer', { type: 'answer', sdp: 'v=0' });
    expect(failures).toHaveLength(1);
  });

  it('tells a new session (the peer reloaded) from a renegotiation', async () => {
    const { calls, fakes, deliver } = pair();
    fakes.bob.onnegotiationneeded?.();
    await settle();
    await deliver('bob');
    const renegotiation = { type: 'offer' as const, sdp: 'v=0\r\no=- bob-session 2 IN IP4 127.0.0.1\r\n' };
    const fresh = { type: 'offer' as const, sdp: 'v=0\r\no=- other-session 1 IN IP4 127.0.0.1\r\n' };
    expect(calls.alice.isNewSession(renegotiation)).toBe(false);
    expect(calls.alice.isNewSession(fresh)).toBe(true);
    expect(calls.alice.isNewSession({ type: 'answer', sdp: fresh.sdp })).toBe(false);
  });
});
