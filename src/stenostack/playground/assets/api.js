// Talking to the server: the API key, authorised requests, and errors as the API words them.

const KEY_STORAGE = "stenostack.apiKey";

/** An error the API reported ({"error": {...}}), or one the page met on the way. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, param = null, type = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
    this.type = type;
  }

  static fromBody(body, status = 0) {
    const error = body && typeof body === "object" ? body.error : null;
    const message = error && typeof error.message === "string" ? error.message : null;
    return new ApiError(message || `The server answered ${status}.`, {
      status,
      code: error?.code ?? null,
      param: error?.param ?? null,
      type: error?.type ?? null,
    });
  }
}

let apiKey = "";
try {
  apiKey = localStorage.getItem(KEY_STORAGE) || "";
} catch {
  // Storage may be off (private mode): the key is then asked for each visit.
}

export function currentKey() {
  return apiKey;
}

export function isKeyRemembered() {
  try {
    return localStorage.getItem(KEY_STORAGE) !== null;
  } catch {
    return false;
  }
}

/** Use `key` from now on; keep it in localStorage only if the user asked to. */
export function setKey(key, remember) {
  apiKey = key.trim();
  try {
    if (remember && apiKey) localStorage.setItem(KEY_STORAGE, apiKey);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Not remembered; the key still works for this page.
  }
}

function authorised(headers = {}) {
  return apiKey ? { ...headers, Authorization: `Bearer ${apiKey}` } : headers;
}

/** fetch with the key; a network failure becomes an ApiError that says so. */
export async function request(path, options = {}) {
  try {
    return await fetch(path, { ...options, headers: authorised(options.headers) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`Could not reach the server (${error.message}).`);
  }
}

/** The ApiError of a response that is not ok, read from its JSON body when it has one. */
export async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's page, say): the status has to do.
  }
  return ApiError.fromBody(body, response.status);
}

/** The served models, each {id, capabilities}. */
export async function listModels() {
  const response = await request("/v1/models");
  if (!response.ok) throw await errorOf(response);
  const body = await response.json();
  return (body.data || []).map((card) => ({ id: card.id, capabilities: card.capabilities || {} }));
}

/** The Realtime API's URL and subprotocols (browsers cannot set headers on a WebSocket, so
 * the key travels as a subprotocol, as OpenAI's browser clients send it). */
export function realtimeTarget(model) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // The model in the URL lets a router pick a backend that serves it.
  const query = new URLSearchParams({ intent: "transcription", model });
  const protocols = ["realtime"];
  if (apiKey) protocols.push(`openai-insecure-api-key.${apiKey}`);
  return { url: `${scheme}//${location.host}/v1/realtime?${query}`, protocols };
}
