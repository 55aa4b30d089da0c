// The playground page: wires the controls to the API, the transcript and the live view.

import { currentKey, isKeyRemembered, listModels, setKey } from "./api.js";
import { acceptFiles } from "./drop-zone.js";
import { DOWNLOADS } from "./formats.js";
import { LiveView } from "./live-view.js";
import { Microphone } from "./microphone.js";
import { fillLanguages, fillModels } from "./pickers.js";
import { LiveSession } from "./realtime.js";
import { transcribeFile } from "./transcribe.js";
import { clock, TranscriptView } from "./transcript-view.js";

const $ = (id) => document.getElementById(id);
const ui = {
  keyForm: $("key-form"),
  key: $("api-key"),
  remember: $("remember-key"),
  model: $("model"),
  language: $("language"),
  task: $("task"),
  dropZone: $("drop-zone"),
  file: $("file"),
  record: $("record"),
  status: $("status"),
  alert: $("alert"),
  player: $("player"),
  transcript: $("transcript"),
  turns: $("turns"),
  downloadFormat: $("download-format"),
  download: $("download"),
};

const transcriptView = new TranscriptView(ui.transcript, ui.player);
const liveView = new LiveView(ui.turns);
let capabilities = new Map(); // model id -> its capabilities
let work = null; // the AbortController of the file being transcribed
let result = null; // {name, verbose} of the last finished file
let live = null; // {session, microphone} while recording

function say(text) {
  ui.status.textContent = text;
}

function showError(message) {
  ui.alert.textContent = message;
  ui.alert.hidden = false;
}

function clearError() {
  ui.alert.hidden = true;
  ui.alert.textContent = "";
}

// -- the key and the models -------------------------------------------------------------

async function loadModels() {
  say("Loading models…");
  try {
    const models = await listModels();
    capabilities = new Map(models.map((model) => [model.id, model.capabilities]));
    fillModels(ui.model, models);
    fillLanguages(ui.language, capabilities.get(ui.model.value));
    clearError();
    say(models.length ? "Ready: choose a file or record." : "The server serves no models.");
  } catch (error) {
    say("");
    if (error.status === 401) {
      showError(`${error.message} Enter the server's API key above.`);
      ui.key.focus();
    } else showError(error.message);
  }
}

ui.key.value = currentKey();
ui.remember.checked = isKeyRemembered();
ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setKey(ui.key.value, ui.remember.checked);
  loadModels();
});
ui.remember.addEventListener("change", () => setKey(ui.key.value, ui.remember.checked));
ui.model.addEventListener("change", () =>
  fillLanguages(ui.language, capabilities.get(ui.model.value)),
);

// -- files ------------------------------------------------------------------------------

function settings() {
  const model = ui.model.value;
  return {
    model,
    language: ui.language.value,
    task: ui.task.value,
    // Only a model that gives word times accepts the ask (Moonshine refuses it).
    wordTimes: Boolean(capabilities.get(model)?.word_timestamps),
  };
}

async function startFile(file) {
  if (live) await stopRecording();
  work?.abort();
  const controller = new AbortController();
  work = controller;
  clearError();
  result = null;
  ui.download.disabled = true;
  ui.turns.hidden = true;
  transcriptView.reset();
  if (ui.player.src) URL.revokeObjectURL(ui.player.src);
  ui.player.src = URL.createObjectURL(file);
  ui.player.hidden = false;
  transcriptView.setState("streaming");
  const doing = `${ui.task.value === "translate" ? "Translating" : "Transcribing"} ${file.name}`;
  say(`${doing}…`);
  try {
    const verbose = await transcribeFile(
      file,
      settings(),
      {
        onDelta: (event) => transcriptView.addDelta(event.delta),
        onSegment: (event) => {
          transcriptView.addSegment(event);
          say(`${doing}: ${clock(event.end)} so far…`); // how far into the audio it is
        },
      },
      controller.signal,
    );
    if (work !== controller) return; // a newer file took over
    transcriptView.showFinal(verbose);
    result = { name: file.name, verbose };
    ui.download.disabled = false;
    const count = (verbose.segments || []).length;
    say(`Done: ${count} segment${count === 1 ? "" : "s"}, ${verbose.duration} s of audio.`);
  } catch (error) {
    if (work !== controller || error.name === "AbortError") return;
    transcriptView.setState("failed");
    say("");
    showError(error.message);
  }
}

acceptFiles(ui.dropZone, ui.file, startFile);

ui.download.addEventListener("click", () => {
  if (!result) return;
  const extension = ui.downloadFormat.value;
  const { type, build } = DOWNLOADS[extension];
  const blob = new Blob([build(result.verbose)], { type });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${result.name.replace(/\.[^.]*$/, "") || "transcript"}.${extension}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
});

// -- the microphone ---------------------------------------------------------------------

function showRecording(state) {
  const labels = { idle: "Record", starting: "Starting…", on: "Stop", finishing: "Finishing…" };
  ui.record.querySelector(".label").textContent = labels[state];
  ui.record.setAttribute("aria-pressed", String(state === "on"));
  ui.record.classList.toggle("on", state === "on");
  ui.record.disabled = state === "starting" || state === "finishing";
}

async function startRecording() {
  const context = Microphone.context(); // now, while the click still counts as a gesture
  work?.abort();
  work = null;
  clearError();
  showRecording("starting");
  // One result at a time: the file's transcript and player give way to the live turns.
  result = null;
  ui.download.disabled = true;
  transcriptView.reset();
  ui.player.pause();
  ui.player.hidden = true;
  liveView.reset();
  ui.turns.hidden = false;
  const session = new LiveSession(
    { model: ui.model.value, language: ui.language.value },
    {
      onSpeechStarted: (id) => liveView.started(id),
      onDelta: (id, text) => liveView.delta(id, text),
      onCompleted: (id, transcript) => liveView.completed(id, transcript),
      onFailed: (id, message) => {
        liveView.failed(id, message);
        showError(message);
      },
      onError: showError,
      onClosed: (reason) => {
        showError(reason);
        stopRecording();
      },
    },
  );
  try {
    await session.open();
    const onPcm = (pcm) => session.appendPcm(pcm);
    const microphone = await Microphone.open(context, onPcm, LiveSession.RATE);
    live = { session, microphone };
    showRecording("on");
    say("Listening: speak, and each turn appears when you pause.");
  } catch (error) {
    session.abort();
    context.close().catch(() => {});
    showRecording("idle");
    say("");
    showError(error.message);
  }
}

async function stopRecording() {
  if (!live) return;
  const { session, microphone } = live;
  live = null;
  showRecording("finishing");
  say("Finishing the last turn…");
  await microphone.close();
  await session.finish();
  showRecording("idle");
  say("Stopped.");
}

ui.record.addEventListener("click", () => (live ? stopRecording() : startRecording()));

loadModels();
