// The live balance: graphql-transport-ws on /graphql, resumed by sequence.
//
// The service numbers every ledger row of a wallet 1, 2, 3, … and replays
// the rows after `afterSequence` when a subscriber reconnects (a fresh
// SNAPSHOT if it missed more than the service replays). This module keeps
// the last sequence delivered and, across any disconnect, resubscribes from
// it: the callback sees each sequence once, in order, or is told of a gap.
// The console page (/console) runs this same code (src/http/pages/live.js
// is its bundle).
import { CreditsError, type GraphQLErrorShape } from "./errors.js";
import { BalanceChangedDocument, type BalanceChangedSubscription } from "./gql/graphql.js";
import { backoffDelay, resolveToken, type TokenSource } from "./token.js";

/** One event of the stream: a SNAPSHOT or a ledger row (GRANT, SPEND, …). */
export type BalanceEvent = BalanceChangedSubscription["balanceChanged"];

/** Where the watch is. */
export type WatchStatus = "connecting" | "live" | "reconnecting" | "closed";

/** Sequences the watch could not deliver one by one. */
export interface BalanceGap {
  /** The last sequence delivered before the gap. */
  after: number;
  /** The sequence of the SNAPSHOT that replaces the missing events. */
  snapshot: number;
}

/** The WebSocket constructor (browsers and Node 22 have one; on Node 20
 * pass `ws`'s, or run with --experimental-websocket). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

export interface WatchOptions {
  /** The GraphQL endpoint, http(s)://host/graphql (ws(s):// also works). */
  url: string;
  token: TokenSource;
  /** Start after this sequence (replayed) instead of a SNAPSHOT. */
  afterSequence?: number;
  /** Send the subscription by its trusted-document id, not its text. */
  trustedDocuments?: boolean;
  /** LOW_BALANCE and BUDGET_EXCEEDED: alerts, carrying the sequence they
   * were raised at (not delivered to the change callback). */
  onAlert?: (event: BalanceEvent) => void;
  /** Missed events replaced by a SNAPSHOT (told before that SNAPSHOT). */
  onGap?: (gap: BalanceGap) => void;
  onStatus?: (status: WatchStatus, detail?: string) => void;
  /** A refusal that retrying cannot cure (a static token refused, no
   * access to the workspace): the watch stops after it. */
  onError?: (error: CreditsError) => void;
  /** Reconnection waits: doubling from `initialMs` up to `maxMs`. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** A connection that has heard nothing for this long (no event, no
   * ping; the service pings every 30 s) is taken for dead and replaced:
   * default 75 s. Also the longest wait for a connection's ack. */
  silenceMs?: number;
  webSocketImpl?: WebSocketConstructor;
}

export interface BalanceWatch {
  /** The last sequence delivered (null before the first event). */
  readonly lastSequence: number | null;
  /** Stops the watch; resolves once its socket is closed. */
  close(): Promise<void>;
}

const LEDGER_ALERTS = new Set(["LOW_BALANCE", "BUDGET_EXCEEDED"]);

/** ws(s)://… of an http(s)://… endpoint. */
function socketUrl(url: string): string {
  if (url.startsWith("ws://") || url.startsWith("wss://")) return url;
  if (url.startsWith("https://")) return "wss://" + url.slice("https://".length);
  if (url.startsWith("http://")) return "ws://" + url.slice("http://".length);
  throw new CreditsError("BAD_USER_INPUT", `not an http(s) or ws(s) URL: ${url}`);
}

/**
 * Watches a wallet's balance: a SNAPSHOT, then every change in ledger
 * order, each sequence exactly once, across disconnects, server restarts
 * and token refreshes. `workspaceId` null means the token's own workspace.
 */
export function watchBalance(
  workspaceId: string | null,
  onChange: (event: BalanceEvent) => void,
  options: WatchOptions,
): BalanceWatch {
  const found: WebSocketConstructor | undefined = options.webSocketImpl ?? globalThis.WebSocket;
  if (!found) throw new CreditsError("BAD_USER_INPUT", "no WebSocket: pass webSocketImpl");
  const Socket: WebSocketConstructor = found;
  const url = socketUrl(options.url);
  const initialMs = options.backoff?.initialMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 10_000;
  const silenceMs = options.silenceMs ?? 75_000;
  let last: number | null = options.afterSequence ?? null;
  // Set when the next SNAPSHOT must be taken whatever `last` is (the
  // service no longer has the rows after it).
  let fresh = false;
  let closed = false;
  let attempt = 0;
  let socket: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let watchdog: ReturnType<typeof setTimeout> | null = null;
  let operation = 0;
  let settleClose: (() => void) | null = null;
  const closedPromise = new Promise<void>((resolve) => {
    settleClose = resolve;
  });

  const status = (value: WatchStatus, detail?: string) => options.onStatus?.(value, detail);

  const stop = (error?: CreditsError) => {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    if (watchdog) clearTimeout(watchdog);
    if (error) options.onError?.(error);
    const open = socket;
    socket = null;
    if (open && open.readyState !== open.CLOSED) {
      open.addEventListener("close", () => finish());
      open.close(1000, "closed by the client");
    } else {
      finish();
    }
  };
  const finish = () => {
    status("closed");
    settleClose?.();
  };

  const retry = (detail: string) => {
    if (closed) return;
    socket = null;
    status("reconnecting", detail);
    const wait = backoffDelay(attempt, initialMs, maxMs);
    attempt += 1;
    timer = setTimeout(connect, wait);
  };

  const deliver = (event: BalanceEvent): "ok" | "resubscribe" => {
    if (LEDGER_ALERTS.has(event.kind)) {
      options.onAlert?.(event);
      return "ok";
    }
    if (event.kind === "SNAPSHOT") {
      if (last !== null && event.sequence === last) {
        fresh = false;
        return "ok";
      }
      if (last !== null) {
        options.onGap?.({ after: last, snapshot: event.sequence });
      }
      fresh = false;
      last = event.sequence;
      onChange(event);
      return "ok";
    }
    if (last !== null && event.sequence <= last) return "ok"; // already delivered
    if (last !== null && event.sequence !== last + 1) {
      // Never seen from the service (it reads the rows between): a gap is
      // told and closed by a fresh SNAPSHOT rather than hidden.
      fresh = true;
      return "resubscribe";
    }
    last = event.sequence;
    onChange(event);
    return "ok";
  };

  const subscribe = (open: WebSocket) => {
    operation += 1;
    const variables: Record<string, unknown> = { workspaceId };
    if (last !== null && !fresh) variables.afterSequence = last;
    const payload: Record<string, unknown> = { variables, operationName: "BalanceChanged" };
    if (options.trustedDocuments) payload.documentId = BalanceChangedDocument.__meta__?.hash;
    else payload.query = BalanceChangedDocument.toString();
    open.send(JSON.stringify({ id: String(operation), type: "subscribe", payload }));
  };

  const refused = (open: WebSocket, errors: GraphQLErrorShape[]) => {
    const error = CreditsError.fromErrors(errors);
    if (error.code === "UNAUTHENTICATED" && typeof options.token === "function") {
      // An expired token: reconnect with a fresh one.
      open.close(1000, "token refreshed");
      return;
    }
    if (error.code === "BAD_USER_INPUT" && last !== null && !fresh && /afterSequence/.test(error.message)) {
      // The wallet's ledger is behind our last sequence (restored): start
      // over from a SNAPSHOT, telling the gap.
      fresh = true;
      subscribe(open);
      return;
    }
    if (error.code === "SERVICE_UNAVAILABLE" || error.code === "INTERNAL_SERVER_ERROR") {
      open.close(1000, error.code);
      return;
    }
    stop(error);
  };

  function connect() {
    timer = null;
    if (closed) return;
    status(attempt === 0 && last === null ? "connecting" : "reconnecting");
    resolveToken(options.token).then(
      (token) => open(token),
      (error: unknown) => retry(`token: ${String(error)}`),
    );
  }

  function open(token: string) {
    if (closed) return;
    let ws: WebSocket;
    try {
      ws = new Socket(url, "graphql-transport-ws");
    } catch (error) {
      retry(String(error));
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "connection_init", payload: { token } }));
    });
    ws.addEventListener("message", (message: MessageEvent) => {
      if (socket !== ws) return;
      heard(ws);
      let msg: { type?: string; id?: string; payload?: unknown };
      try {
        msg = JSON.parse(String(message.data));
      } catch {
        ws.close(4400, "not JSON");
        return;
      }
      switch (msg.type) {
        case "connection_ack":
          attempt = 0;
          subscribe(ws);
          status("live");
          break;
        case "ping":
          ws.send(JSON.stringify({ type: "pong" }));
          break;
        case "next": {
          if (msg.id !== String(operation)) break;
          const payload = msg.payload as { data?: { balanceChanged?: BalanceEvent }; errors?: GraphQLErrorShape[] };
          if (payload.errors?.length) {
            refused(ws, payload.errors);
          } else if (payload.data?.balanceChanged) {
            if (deliver(payload.data.balanceChanged) === "resubscribe") {
              ws.send(JSON.stringify({ id: String(operation), type: "complete" }));
              subscribe(ws);
            }
          }
          break;
        }
        case "error":
          if (msg.id === String(operation)) refused(ws, msg.payload as GraphQLErrorShape[]);
          break;
        case "complete":
          // The service ended the stream (an error it reported): start again.
          if (msg.id === String(operation)) ws.close(1000, "stream ended");
          break;
      }
    });
    // A socket ends with `close`, but a connection reset during the
    // handshake may bring only `error`: either one ends it, once.
    ws.addEventListener("close", (event: CloseEvent) => lost(ws, event.code, event.reason));
    ws.addEventListener("error", () => lost(ws, 1006, "connection failed"));
    heard(ws);
  }

  /** Restarts the silence timer of the current socket. */
  function heard(ws: WebSocket) {
    if (watchdog) clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      if (socket !== ws) return;
      lost(ws, 4408, "no answer from the service");
    }, silenceMs);
  }

  function lost(ws: WebSocket, code: number, reason: string) {
    if (socket !== ws) return;
    socket = null;
    if (watchdog) clearTimeout(watchdog);
    if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) {
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
    if (closed) return;
    const detail = reason || String(code);
    if (code === 4403 && !detail.startsWith("LIMIT_EXCEEDED") && typeof options.token !== "function") {
      // A static token refused: retrying with it is refused again.
      stop(new CreditsError("UNAUTHENTICATED", detail));
      return;
    }
    if ([4400, 4401, 4409, 4429].includes(code)) {
      // The protocol broken: a bug, not a fault retrying cures.
      stop(new CreditsError("BAD_USER_INPUT", `the service closed the socket: ${detail}`));
      return;
    }
    retry(detail);
  }

  connect();
  return {
    get lastSequence() {
      return last;
    },
    close() {
      stop();
      return closedPromise;
    },
  };
}
