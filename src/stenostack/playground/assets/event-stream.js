// Server-sent events read from a fetch body: an EventSource cannot POST a file.

import { ApiError } from "./api.js";

/**
 * Yield each `data:` event of a text/event-stream body as parsed JSON, until `[DONE]`.
 * An `{"error": {...}}` event (a failure after the stream began) is thrown as an ApiError.
 */
export async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      // Line endings may be \r\n, \r or \n (a \r at the very end waits for what follows
      // it); events end at a blank line.
      pending = (pending + value).replace(/\r\n|\r(?!$)/g, "\n");
      let end;
      while ((end = pending.indexOf("\n\n")) >= 0) {
        const data = dataOf(pending.slice(0, end));
        pending = pending.slice(end + 2);
        if (data === null) continue; // a comment (keep-alive) or an event with no data
        if (data === "[DONE]") return;
        const event = JSON.parse(data);
        if (event.error) throw ApiError.fromBody(event);
        yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  throw new ApiError("The stream ended before the transcript was done.");
}

function dataOf(block) {
  const lines = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5));
  return lines.length ? lines.join("\n") : null;
}
