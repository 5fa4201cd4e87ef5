// The demo page: one room, a call to every other member, a data-channel chat and an
// optional camera. All the protocol work is in signaling.js; this file is the page glue.

import { joinRoom, PeerCall, SignalingClient } from './signaling.js';

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);

// The room is the URL hash, so the address bar is the invitation link. In open mode the
// room id is the capability: make up an unguessable one rather than a word.
let roomId = location.hash.slice(1);
if (!/^[A-Za-z0-9_-]{1,64}$/.test(roomId)) {
  roomId = Array.from(crypto.getRandomValues(new Uint8Array(9)), (b) => b.toString(16).padStart(2, '0')).join('');
  history.replaceState(null, '', `#${roomId}`);
}
window.addEventListener('hashchange', () => location.reload());

const calls = new Map(); // peerId -> PeerCall
let signaling = null;
let localStream = null;
let rtcConfig = { iceServers: [] };

function log(text, kind = 'info') {
  const item = document.createElement('li');
  item.className = kind;
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  append($('#events'), item);
}

function chat(who, text) {
  const item = document.createElement('li');
  const name = document.createElement('b');
  name.textContent = `${who}: `;
  item.append(name, text);
  append($('#chat'), item);
}

function append(list, item) {
  list.append(item);
  list.scrollTop = list.scrollHeight; // follow the newest line without scrolling the page
}

function render() {
  $('#peers').replaceChildren(...Array.from(calls.values(), (call) => {
    const item = document.createElement('li');
    item.textContent = `${call.peerId}: ${call.pc.connectionState}` +
      (call.channel.readyState === 'open' ? ', chat open' : '');
    item.dataset.state = call.pc.connectionState;
    return item;
  }));
  if (!calls.size) $('#peers').innerHTML = '<li class="muted">nobody else here yet: share the link</li>';
  $('#send').disabled = ![...calls.values()].some((call) => call.channel.readyState === 'open');
}

function callFor(peerId) {
  let call = calls.get(peerId);
  if (call) return call;
  // Both sides must agree on who is polite without talking: compare the ids.
  call = new PeerCall(signaling, peerId, { polite: signaling.clientId < peerId, rtcConfig });
  call.addEventListener('state', render);
  call.addEventListener('open', () => { log(`chat with ${peerId} open`); render(); });
  call.addEventListener('message', ({ detail }) => chat(peerId, detail.text));
  call.addEventListener('track', ({ detail }) => {
    showVideo(`video-${peerId}`, detail.streams[0] || new MediaStream([detail.track]), peerId);
  });
  call.addEventListener('failure', ({ detail }) => log(`call with ${peerId}: ${detail.error}`, 'error'));
  if (localStream) call.addStream(localStream);
  calls.set(peerId, call);
  render();
  return call;
}

function dropCall(peerId) {
  calls.get(peerId)?.close();
  calls.delete(peerId);
  document.getElementById(`video-${peerId}`)?.closest('figure').remove();
  render();
}

function showVideo(elementId, stream, name, muted = false) {
  let video = document.getElementById(elementId);
  if (!video) {
    video = Object.assign(document.createElement('video'), { id: elementId, autoplay: true, playsInline: true, muted });
    const figure = document.createElement('figure');
    const caption = document.createElement('figcaption');
    caption.textContent = name;
    figure.append(video, caption);
    $('#videos').append(figure);
  }
  if (video.srcObject !== stream) video.srcObject = stream;
}

async function start() {
  const wanted = params.get('clientId') || '';
  let token = params.get('token') || '';
  let clientId = wanted;
  if (!token) {
    // The REST join reserves our id, and hands out a token (so a reconnect can take
    // over our own half-dead connection) and the ICE servers the operator configured.
    try {
      const joined = await joinRoom(roomId, wanted);
      ({ clientId, token } = joined);
      rtcConfig = { iceServers: joined.iceServers || [] };
    } catch (error) {
      log(`could not join: ${error.message}`, 'error');
      $('#signaling').textContent = 'not connected';
      return;
    }
  }
  $('#room').textContent = roomId;
  $('#link').href = $('#link').textContent = location.href.replace(location.search, '');
  $('#me').textContent = clientId;

  // Our own REST join can renew the token, unless it came from the app's backend (?token=).
  const renewToken = params.get('token') ? undefined : async () => (await joinRoom(roomId, clientId)).token;
  signaling = new SignalingClient({ roomId, clientId, token, renewToken });
  signaling.addEventListener('status', ({ detail }) => {
    const { state, code, reason, delay } = detail;
    const why = code ? ` (${code}${reason ? ` ${reason}` : ''})` : '';
    const text = state === 'reconnecting' ? `reconnecting in ${(delay / 1000).toFixed(1)} s${why}` : state + why;
    $('#signaling').textContent = text;
    if (state !== 'connecting') log(`signaling ${text}`, state === 'open' ? 'info' : 'warn');
  });
  signaling.addEventListener('joined', ({ detail }) => {
    // The newcomer calls everyone already here; they answer (see `signal`). After a
    // reconnect, calls we already have are kept, even to peers not (yet) back: media
    // flows peer to peer and outlives a signaling outage, such as a server restart that
    // everyone reconnects from in random order. A peer that really left gets peer-left.
    for (const peerId of detail.peers) callFor(peerId);
  });
  signaling.addEventListener('peer-joined', ({ detail }) => log(`${detail.clientId} joined`));
  signaling.addEventListener('peer-left', ({ detail }) => {
    log(`${detail.clientId} left`);
    dropCall(detail.clientId);
  });
  // The first offer from a newcomer creates our side of the call.
  signaling.addEventListener('signal', ({ detail }) => callFor(detail.from).handle(detail.type, detail.data));
  signaling.addEventListener('error', ({ detail }) => {
    log(`server refused a frame: ${detail.code}: ${detail.message}`, 'error');
  });
  signaling.connect();
  // A clean close tells the others at once, instead of after the server's reconnect grace.
  window.addEventListener('pagehide', () => signaling.close());
  window.demo = { signaling, calls }; // for the console and the end-to-end test
}

$('#chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('#message').value.trim();
  if (!text) return;
  const sent = [...calls.values()].filter((call) => call.send(text)).length;
  if (sent) {
    chat('me', text);
    $('#message').value = '';
  }
});

// Media only on request: a demo page should never ask for the camera by itself.
$('#camera').addEventListener('click', async () => {
  $('#camera').disabled = true;
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (error) {
    log(`camera: ${error.message}`, 'error');
    $('#camera').disabled = false;
    return;
  }
  showVideo('local-video', localStream, 'you', true); // muted: never play our own microphone back
  for (const call of calls.values()) call.addStream(localStream);
});

render();
start();
