// The search page: a photo and/or words plus filters -> POST /api/v1/search -> a grid of cards.
// Plain JavaScript, no build step. Every failure becomes a sentence in #error, never a stack trace.
"use strict";

const API = "/api/v1";
const PAGE_SIZE = 12;
const $ = (id) => document.getElementById(id);
const state = { photo: null, cursor: null, latest: 0 };
// The server fills #page-data with this page's locale: its sentences, and each plural message's
// forms by CLDR category (the browser's Intl.PluralRules picks one, as the catalog would).
const PAGE = JSON.parse(document.getElementById("page-data").textContent);
const LANG = PAGE.lang;

function t(key, values) {
  let text = PAGE.messages[key] || key;
  for (const [name, value] of Object.entries(values || {})) text = text.split("%(" + name + ")s").join(String(value));
  return text;
}

function tn(key, count) {
  const forms = PAGE.plurals[key];
  const form = forms[new Intl.PluralRules(LANG).select(count)] || forms.other;
  return form.split("%(num)s").join(new Intl.NumberFormat(LANG).format(count));
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy, message) {
  $("results").setAttribute("aria-busy", busy ? "true" : "false");
  $("go").disabled = busy;
  $("more").disabled = busy;
  $("status").textContent = message || "";
}

function filters() {
  const out = {};
  const category = $("category").value;
  if (category) out.categories = [category];
  const min = $("price-min").value, max = $("price-max").value;
  if (min !== "") out.price_min = Number(min);
  if (max !== "") out.price_max = Number(max);
  if ($("in-stock").checked) out.in_stock = true;
  return out;
}

// Only the newest request may change the page: an older answer arriving late is dropped.
class Stale extends Error {}

async function latest(path, options) {
  const ticket = ++state.latest;
  const body = await call(path, options);
  if (ticket !== state.latest) throw new Stale();
  return body;
}

async function call(path, options) {
  let response;
  try {
    const headers = Object.assign({ "Accept-Language": LANG }, (options && options.headers) || {});
    response = await fetch(API + path, Object.assign({}, options, { headers }));
  } catch (e) {
    throw new Error(t("offline"));
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const said = body && body.error ? body.error : "";
    if (response.status === 413) throw new Error(t("too_large"));
    if (response.status === 503) throw new Error(t("busy"));
    throw new Error(said ? humanise(said) : t("failed", { status: response.status }));
  }
  return body;
}

function humanise(message) {
  if (/^image: image too large/.test(message)) return t("too_large");
  if (/^image: /.test(message)) return t("unreadable");
  if (/^filters\.price/.test(message)) return t("check_price", { detail: message.replace(/^filters\.[a-z_]+: /, "") });
  return message;
}

function money(card) {
  if (card.price === null || card.price === undefined) return "";
  const value = Number(card.price);
  if (card.currency && /^[A-Za-z]{3}$/.test(card.currency)) {
    try { return new Intl.NumberFormat(LANG, { style: "currency", currency: card.currency.toUpperCase() }).format(value); } catch (e) { /* not an ISO code */ }
  }
  const amount = new Intl.NumberFormat(LANG, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(value);
  return card.currency ? amount + " " + card.currency : amount;
}

function render(answer, append) {
  const grid = $("results");
  if (!append) grid.replaceChildren();
  const template = $("card");
  for (const card of answer.cards) {
    const node = template.content.firstElementChild.cloneNode(true);
    node.dataset.productId = card.product_id;
    const img = node.querySelector("img");
    if (card.image_url) img.src = card.image_url;
    img.alt = card.title;
    const photoLink = node.querySelector(".photo");
    const open = node.querySelector(".open");
    if (card.url) { photoLink.href = card.url; open.href = card.url; } else { photoLink.removeAttribute("href"); open.remove(); }
    node.querySelector(".title").textContent = card.title;
    node.querySelector(".price").textContent = money(card);
    node.querySelector(".stock").textContent = card.in_stock ? t("in_stock") : t("out_of_stock");
    node.querySelector(".similar").addEventListener("click", () => similar(card));
    grid.appendChild(node);
  }
  state.cursor = answer.next_cursor || null;
  $("more").hidden = !state.cursor;
  const shown = grid.children.length;
  setBusy(false, shown ? tn("products", shown) : "");
  if (!shown) showError(answer.message || t("no_match"));
}

async function search(event) {
  if (event) event.preventDefault();
  const text = $("text").value.trim();
  if (!state.photo && !text) { showError(t("need_query")); return; }
  showError("");
  setBusy(true, t("searching"));
  const form = new FormData();
  if (state.photo) form.append("image", state.photo);
  if (text) form.append("text", text);
  form.append("filters", JSON.stringify(filters()));
  form.append("limit", String(PAGE_SIZE));
  try {
    render(await latest("/search", { method: "POST", body: form }), false);
  } catch (e) {
    if (e instanceof Stale) return;
    $("results").replaceChildren();
    $("more").hidden = true;
    setBusy(false, "");
    showError(e.message);
  }
}

async function more() {
  if (!state.cursor) return;
  setBusy(true, t("loading_more"));
  try {
    render(await latest("/search", { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify({ cursor: state.cursor, limit: PAGE_SIZE }) }), true);
  } catch (e) {
    if (e instanceof Stale) return;
    setBusy(false, "");
    showError(e.message);
  }
}

async function similar(card) {
  showError("");
  setBusy(true, t("finding_like", { title: card.title }));
  try {
    const query = "?limit=" + PAGE_SIZE + "&point_id=" + encodeURIComponent(card.point_id);
    render(await latest("/products/" + encodeURIComponent(card.product_id) + "/similar" + query, {}), false);
    $("status").textContent = t("more_like_status", { title: card.title, status: $("status").textContent });
    window.scrollTo({ top: $("results").offsetTop - 8, behavior: "smooth" });
  } catch (e) {
    if (e instanceof Stale) return;
    setBusy(false, "");
    showError(e.message);
  }
}

function usePhoto(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) { showError(t("not_a_photo")); return; }
  state.photo = file;
  const preview = $("preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-text").textContent = file.name || "photo";
  search();
}

function clearPhoto() {
  state.photo = null;
  $("photo").value = "";
  $("preview").hidden = true;
  const choose = document.createElement("u");
  choose.textContent = t("choose");
  $("drop-text").replaceChildren(t("drop") + " ", choose);
}

async function loadCategories() {
  try {
    const facets = await call("/facets", {});
    const select = $("category");
    for (const [name, count] of Object.entries(facets.categories || {})) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name + " (" + new Intl.NumberFormat(LANG).format(count) + ")";
      select.appendChild(option);
    }
  } catch (e) {
    /* filters stay usable without the list */
  }
}

window.addEventListener("DOMContentLoaded", () => {
  const drop = $("drop");
  $("search").addEventListener("submit", search);
  $("photo").addEventListener("change", (e) => { usePhoto(e.target.files[0]); e.target.value = ""; });  // the same file can be picked again
  $("more").addEventListener("click", more);
  $("clear").addEventListener("click", clearPhoto);
  for (const id of ["category", "in-stock"]) $(id).addEventListener("change", () => { if (state.photo || $("text").value.trim()) search(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); usePhoto(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("photo").click(); } });
  loadCategories();
});
