import react from '@vitejs/plugin-react';
import { VitePWA } from 'vite-plugin-pwa';
import { defineConfig } from 'vitest/config';

// Paths the service worker must never answer from a cache or with the app shell: the
// signaling WebSocket, the REST API, health checks and the API description. They always
// go to the network, so a call never talks to a stale answer.
const API_PATHS = [/^\/ws/, /^\/rooms\//, /^\/healthz/, /^\/readyz/, /^\/openapi\.json/, /^\/metrics/];

export default defineConfig({
  plugins: [
    react(),
    VitePWA({
      registerType: 'autoUpdate',
      injectRegister: false, // main.tsx registers it (virtual:pwa-register)
      includeManifestIcons: false, // globPatterns below already precaches them, once
      manifest: {
        name: 'Video call (actor-signaling)',
        short_name: 'Video call',
        description: 'Peer-to-peer video calls and chat through the actor-signaling service',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        background_color: '#ffffff',
        theme_color: '#1d4ed8',
        icons: [
          { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        // The app shell only: the built JS/CSS/HTML, the icons and the manifest.
        globPatterns: ['**/*.{js,css,html,png,webmanifest}'],
        navigateFallback: '/index.html',
        navigateFallbackDenylist: API_PATHS,
        runtimeCaching: [], // nothing else is cached at run time: API answers never are
        cleanupOutdatedCaches: true,
        // The first visit is served by the worker at once, so the app opens offline after it.
        clientsClaim: true,
        skipWaiting: true,
      },
    }),
  ],
  build: { outDir: 'dist', emptyOutDir: true },
  server: {
    // `npm run dev` against a running signaling-server on the default port.
    proxy: {
      '/rooms': 'http://127.0.0.1:8080',
      '/ws': { target: 'ws://127.0.0.1:8080', ws: true },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
