// The model and language pickers, filled from GET /v1/models.

const names = (() => {
  try {
    return new Intl.DisplayNames(["en"], { type: "language" });
  } catch {
    return null; // an old browser: the codes alone
  }
})();

function languageName(code) {
  try {
    const name = names?.of(code);
    return name && name !== code ? `${name} (${code})` : code;
  } catch {
    return code; // a code Intl does not know
  }
}

function option(value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

/** Fill the model picker, keeping the chosen model if it is still served. */
export function fillModels(select, models) {
  const chosen = select.value;
  select.replaceChildren(...models.map((model) => option(model.id, model.id)));
  if (models.some((model) => model.id === chosen)) select.value = chosen;
}

/** Fill the language picker with "Detect" and what `capabilities` lists, sorted by name. */
export function fillLanguages(select, capabilities) {
  const chosen = select.value;
  const codes = capabilities?.languages || [];
  const entries = codes.map((code) => [code, languageName(code)]);
  entries.sort((a, b) => a[1].localeCompare(b[1]));
  select.replaceChildren(
    option("", "Detect"),
    ...entries.map(([code, name]) => option(code, name)),
  );
  if (codes.includes(chosen)) select.value = chosen;
}
