// A small typed event emitter: `on` returns its own unsubscribe, so React effects can
// clean up with one call, and listeners get typed payloads instead of CustomEvents.

export type Listener<T> = (payload: T) => void;

export class Emitter<Events extends object> {
  private listeners: { [K in keyof Events]?: Set<Listener<Events[K]>> } = {};

  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners[type];
    if (!set) set = this.listeners[type] = new Set();
    set.add(listener);
    return () => set.delete(listener);
  }

  protected emit<K extends keyof Events>(type: K, payload: Events[K]): void {
    for (const listener of [...(this.listeners[type] ?? [])]) listener(payload);
  }
}
