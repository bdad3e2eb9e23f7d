// A real EventSource (the npm `eventsource` package, which follows the
// WHATWG spec: reconnects with Last-Event-ID) printing every event it
// receives as one JSON line, until it has seen `count` events.
// usage: node eventsource.mjs URL COUNT
import { EventSource } from "eventsource";

const [url, count] = [process.argv[2], Number(process.argv[3])];
let seen = 0;
const es = new EventSource(url);
const print = (type) => (e) => {
  // A connection error is also delivered as an `error` event, without data;
  // only the server's own `event:error` counts.
  if (type === "error" && e.data === undefined) return;
  console.log(JSON.stringify({ type, id: e.lastEventId, data: e.data }));
  if (++seen >= count) {
    es.close();
    process.exit(0);
  }
};
es.onmessage = print("message");
for (const type of ["delete", "reset", "gap", "error"]) es.addEventListener(type, print(type));
es.onopen = () => console.log(JSON.stringify({ type: "open" }));
setTimeout(() => process.exit(3), 60000);
