import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { ChatPanel, InviteLink, PeerStatus, StatusBanner } from './components';

afterEach(cleanup);

describe('ChatPanel', () => {
  it('keeps Send disabled until a peer can receive, then sends the trimmed text and clears the box', () => {
    const onSend = vi.fn().mockReturnValue(true);
    const { rerender } = render(<ChatPanel lines={[]} canSend={false} onSend={onSend} />);
    const input = screen.getByTestId('chat-input') as HTMLInputElement;
    const send = screen.getByTestId('chat-send') as HTMLButtonElement;
    fireEvent.change(input, { target: { value: '  hello  ' } });
    expect(send.disabled).toBe(true);
    rerender(<ChatPanel lines={[]} canSend onSend={onSend} />);
    expect(send.disabled).toBe(false);
    fireEvent.click(send);
    expect(onSend).toHaveBeenCalledWith('hello');
    expect(input.value).toBe('');
  });

  it('keeps the text when nobody got it, and lists lines with their sender', () => {
    const onSend = vi.fn().mockReturnValue(false);
    render(<ChatPanel lines={[{ id: 1, from: 'bob', text: 'hi' }, { id: 2, from: 'me', text: 'yo' }]} canSend
      onSend={onSend} />);
    const input = screen.getByTestId('chat-input') as HTMLInputElement;
    fireEvent.change(input, { target: { value: 'lost?' } });
    fireEvent.submit(input.closest('form') as HTMLFormElement);
    expect(input.value).toBe('lost?');
    expect(screen.getAllByTestId('chat-line').map((li) => li.textContent)).toEqual(['bob: hi', 'me: yo']);
  });
});

describe('StatusBanner', () => {
  it('shows the message for people, with state and code for machines, in a live region', () => {
    render(<StatusBanner status="reconnecting" message="The server is shutting down; reconnecting…" code="1001" />);
    const banner = screen.getByRole('status');
    expect(banner.textContent).toBe('The server is shutting down; reconnecting…');
    expect(banner.dataset.state).toBe('reconnecting');
    expect(banner.dataset.code).toBe('1001');
    expect(banner.getAttribute('aria-live')).toBe('polite');
  });
});

describe('PeerStatus', () => {
  it('shows signaling, ICE and DTLS state of one peer', () => {
    render(<PeerStatus id="bob" state={{ signaling: 'stable', ice: 'connected', dtls: 'connected',
      connection: 'connected', chatOpen: true }} />);
    const box = screen.getByTestId('peer-state-bob');
    expect(box.dataset.connection).toBe('connected');
    expect(box.textContent).toBe('SignalingstableICEconnectedDTLSconnectedChatopen');
  });
});

describe('InviteLink', () => {
  it('links to /#room and copies it to the clipboard', async () => {
    const writeText = vi.fn().mockResolvedValue(undefined);
    vi.stubGlobal('navigator', { ...navigator, clipboard: { writeText } });
    render(<InviteLink roomId="room-42" />);
    const link = screen.getByTestId('invite-link') as HTMLAnchorElement;
    expect(link.href).toBe(`${location.origin}/#room-42`);
    fireEvent.click(screen.getByTestId('copy-invite'));
    expect(await screen.findByText('Link copied')).toBeTruthy();
    expect(writeText).toHaveBeenCalledWith(`${location.origin}/#room-42`);
    vi.unstubAllGlobals();
  });
});
