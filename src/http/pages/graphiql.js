"use strict";
// GraphiQL against this service only: queries and mutations over POST,
// subscriptions over graphql-transport-ws on the same /graphql. The token
// goes in the Headers tab: {"Authorization": "Bearer <jwt>"}; it is sent
// as the connection_init payload for subscriptions.
(function () {
  const endpoint = new URL("/graphql", window.location.href);

  function isSubscription(params) {
    const text = params.query.replace(/#[^\n\r]*/g, "");
    const name = params.operationName;
    const pattern = name
      ? new RegExp("\\bsubscription\\s+" + name + "\\b")
      : /^\s*subscription\b/;
    return pattern.test(text);
  }

  function subscribe(params, headers) {
    return {
      subscribe(observer) {
        const url = endpoint.href.replace(/^http/, "ws");
        const socket = new WebSocket(url, "graphql-transport-ws");
        let done = false;
        const finish = () => {
          if (!done) {
            done = true;
            observer.complete();
          }
        };
        socket.onopen = () => {
          const authorization = headers.Authorization || headers.authorization || "";
          socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: authorization } }));
        };
        socket.onmessage = (event) => {
          const message = JSON.parse(event.data);
          if (message.type === "connection_ack") {
            socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: params }));
          } else if (message.type === "next") {
            observer.next(message.payload);
          } else if (message.type === "error") {
            observer.next({ errors: message.payload });
            finish();
          } else if (message.type === "complete") {
            finish();
          } else if (message.type === "ping") {
            socket.send(JSON.stringify({ type: "pong" }));
          }
        };
        socket.onclose = (event) => {
          if (!done && event.code !== 1000) {
            observer.next({ errors: [{ message: "connection closed: " + event.code + " " + event.reason }] });
          }
          finish();
        };
        return { unsubscribe: () => socket.close(1000) };
      },
    };
  }

  async function fetcher(params, options) {
    const headers = (options && options.headers) || {};
    if (isSubscription(params)) {
      return subscribe(params, headers);
    }
    const response = await fetch(endpoint, {
      method: "POST",
      headers: Object.assign(
        { "content-type": "application/json", accept: "application/graphql-response+json, application/json" },
        headers,
      ),
      body: JSON.stringify(params),
    });
    return response.json();
  }

  const defaultQuery = [
    "# Protodesk credits. The catalogue is public; everything else needs a",
    "# token: put {\"Authorization\": \"Bearer <jwt>\"} in the Headers tab below",
    "# (`protodesk-credits token --role agent --workspace acme` mints one).",
    "{",
    "  plans { code monthlyCredits }",
    "}",
    "",
  ].join("\n");

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery,
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    }),
  );
})();
