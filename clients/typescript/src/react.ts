// useBalance: the live balance as React state (useSyncExternalStore), one
// watch per client and workspace however many components show it.
import { createContext, createElement, type ReactNode, useContext, useSyncExternalStore } from "react";

import type { Balance, CreditsClient } from "./client.js";
import type { CreditsError } from "./errors.js";
import type { BalanceEvent, BalanceGap, BalanceWatch, WatchStatus } from "./live.js";

export interface BalanceState {
  status: WatchStatus | "error";
  balance: Balance | null;
  /** The last sequence shown. */
  sequence: number | null;
  /** Nothing left to spend: every AI action costs at least one credit. */
  aiPaused: boolean;
  lastEvent: BalanceEvent | null;
  /** The last gap the watch told (events replaced by a SNAPSHOT). */
  gap: BalanceGap | null;
  error: CreditsError | null;
}

const INITIAL: BalanceState = {
  status: "connecting",
  balance: null,
  sequence: null,
  aiPaused: false,
  lastEvent: null,
  gap: null,
  error: null,
};

/** One shared watch and its listeners. */
class BalanceStore {
  state: BalanceState = INITIAL;
  private listeners = new Set<() => void>();
  private watch: BalanceWatch | null = null;
  private stopping: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private client: CreditsClient,
    private workspaceId: string | null,
    private onEmpty: () => void,
  ) {}

  private set(patch: Partial<BalanceState>) {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    if (this.stopping) clearTimeout(this.stopping);
    this.stopping = null;
    this.watch ??= this.client.watchBalance(
      this.workspaceId,
      (event) =>
        this.set({
          balance: event.balance,
          sequence: event.sequence,
          aiPaused: event.balance.available <= 0,
          lastEvent: event,
        }),
      {
        onStatus: (status) => {
          if (this.state.status !== "error") this.set({ status });
        },
        onGap: (gap) => this.set({ gap }),
        onError: (error) => this.set({ status: "error", error }),
      },
    );
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size > 0) return;
      // Not at once: React's StrictMode unsubscribes and subscribes again.
      this.stopping = setTimeout(() => {
        const watch = this.watch;
        this.watch = null;
        this.state = INITIAL;
        this.onEmpty();
        void watch?.close();
      }, 1000);
    };
  };

  getSnapshot = () => this.state;
}

const stores = new WeakMap<CreditsClient, Map<string, BalanceStore>>();

function storeFor(client: CreditsClient, workspaceId: string | null): BalanceStore {
  let byWorkspace = stores.get(client);
  if (!byWorkspace) {
    byWorkspace = new Map();
    stores.set(client, byWorkspace);
  }
  const key = workspaceId ?? "";
  let store = byWorkspace.get(key);
  if (!store) {
    const map = byWorkspace;
    store = new BalanceStore(client, workspaceId, () => map.delete(key));
    byWorkspace.set(key, store);
  }
  return store;
}

const ClientContext = createContext<CreditsClient | null>(null);

/** Makes `client` the one `useBalance` uses below it. */
export function CreditsProvider({ client, children }: { client: CreditsClient; children?: ReactNode }) {
  return createElement(ClientContext.Provider, { value: client }, children);
}

/** The wallet's balance, live: re-renders on every change, resumes after
 * any disconnect. `workspaceId` null: the token's own workspace. */
export function useBalance(workspaceId: string | null = null, client?: CreditsClient): BalanceState {
  const provided = useContext(ClientContext);
  const chosen = client ?? provided;
  if (!chosen) throw new Error("useBalance needs a CreditsProvider or a client");
  const store = storeFor(chosen, workspaceId);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
