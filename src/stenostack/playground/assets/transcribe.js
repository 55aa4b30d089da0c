// One uploaded file, transcribed (or translated) as a stream of verbose_json events.

import { errorOf, request } from "./api.js";
import { serverEvents } from "./event-stream.js";

const ENDPOINTS = {
  transcribe: "/v1/audio/transcriptions",
  translate: "/v1/audio/translations",
};

/**
 * Send `file` and follow its events: `onDelta(event)` for each piece of text,
 * `onSegment(event)` for each timed segment. Resolves to the whole verbose_json body.
 * `wordTimes`: ask for word timestamps (only models that give them accept the ask).
 */
export async function transcribeFile(file, settings, { onDelta, onSegment }, signal) {
  const { model, language, task, wordTimes } = settings;
  const form = new FormData();
  form.append("file", file, file.name || "audio");
  form.append("model", model);
  form.append("response_format", "verbose_json");
  form.append("stream", "true");
  if (language) form.append("language", language);
  // Translations have no words in verbose_json; segments come either way.
  if (wordTimes && task === "transcribe") form.append("timestamp_granularities[]", "word");
  form.append("timestamp_granularities[]", "segment");

  const response = await request(ENDPOINTS[task], { method: "POST", body: form, signal });
  if (!response.ok) throw await errorOf(response);
  if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    return await response.json(); // a server that does not stream: the whole body at once
  }
  for await (const event of serverEvents(response.body)) {
    if (event.type === "transcript.text.delta") onDelta(event);
    else if (event.type === "transcript.text.segment") onSegment(event);
    else if (event.type === "transcript.text.done") {
      // The rest is the verbose_json body (`languages` belongs to the plain stream's event).
      const { type, languages, ...verbose } = event;
      return verbose;
    }
  }
  throw new Error("unreachable: serverEvents ends with [DONE] or throws");
}
