// The page of `darkdeblur serve`: photos go to the server one at a time, in the order chosen.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
let info = { methods: [], method: "", max_upload_bytes: Infinity, max_megapixels: 0 };
let queue = Promise.resolve();  // photos are sent one after the other

function megabytes(bytes) { return (bytes / 1e6).toFixed(1) + " MB"; }

async function start() {
  try {
    const response = await fetch("/api/info");
    info = await response.json();
  } catch (err) {
    $("#message").textContent = "the server did not answer; is darkdeblur serve still running?";
    return;
  }
  const select = $("#method");
  for (const method of info.methods) {
    const option = new Option(method, method, false, method === info.method);
    select.add(option);
  }
  $("#limits").textContent = `Photos up to ${(info.max_upload_bytes / 1e6).toFixed(0)} MB and ` +
    `${info.max_megapixels} megapixels, on ${info.device}; they stay on this computer.`;
  $("#files").addEventListener("change", (event) => { add(event.target.files); event.target.value = ""; });
  const drop = $("#drop");
  for (const target of [drop, document.body]) {
    target.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    target.addEventListener("dragleave", () => drop.classList.remove("over"));
    target.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      add(event.dataTransfer.files);
    });
  }
}

function add(files) {
  $("#message").textContent = "";
  for (const file of files) {
    const card = newCard(file.name);
    const method = $("#method").value;
    queue = queue.then(() => process(file, method, card));
  }
}

function newCard(name) {
  const card = $("#photo-template").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = name;
  $(".status", card).textContent = "waiting";
  $(".progress", card).value = 0;
  $("#photos").prepend(card);
  return card;
}

function process(file, method, card) {
  const status = $(".status", card), progress = $(".progress", card);
  if (file.size > info.max_upload_bytes) {
    return fail(card, `the file is too large: ${megabytes(file.size)}, the limit is ` +
                      `${info.max_upload_bytes / 1e6} MB`);
  }
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const query = new URLSearchParams({ method, name: file.name });
    let timer = null;
    xhr.open("POST", "/api/restore?" + query);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = event.loaded / event.total;
      status.textContent = "uploading";
    };
    xhr.upload.onload = () => {
      const began = Date.now();
      progress.removeAttribute("value");  // indeterminate: the engines do not report progress
      const tick = () => { status.textContent = `deblurring with ${method}… ${Math.round((Date.now() - began) / 1000)} s`; };
      tick();
      timer = setInterval(tick, 1000);
    };
    xhr.onload = () => {
      clearInterval(timer);
      let answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = null; }
      if (xhr.status === 200 && answer) show(card, answer).then(resolve);
      else resolve(fail(card, (answer && answer.error) || `the server answered ${xhr.status}`));
    };
    xhr.onerror = () => {
      clearInterval(timer);
      resolve(fail(card, "the server did not answer; is darkdeblur serve still running?"));
    };
    xhr.send(file);
  });
}

function fail(card, message) {
  $(".status", card).textContent = "failed";
  $(".progress", card).hidden = true;
  $(".error", card).textContent = message;
  card.classList.add("failed");
}

function loaded(img, src) {
  return new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = src;
  });
}

async function show(card, answer) {
  const before = $(".before", card), after = $(".after", card);
  const ok = (await Promise.all([loaded(before, answer.input), loaded(after, answer.result)])).every(Boolean);
  if (!ok) return fail(card, "the result could not be shown; try again");
  $(".progress", card).hidden = true;
  $(".status", card).textContent = `${answer.width}x${answer.height}, ${answer.method}`;
  const notes = $(".notes", card);
  for (const line of answer.warnings) notes.append(Object.assign(document.createElement("li"), { textContent: line }));
  const download = $(".download", card);
  download.href = answer.download;
  download.download = answer.download_name;
  download.textContent = "Download " + answer.download_name;
  if (answer.kernel) {
    $(".kernel img", card).src = answer.kernel;
    $(".kernel", card).hidden = false;
  }
  $(".view", card).hidden = false;
  card.classList.add("done");
  connect(card, before, after);
}

function connect(card, before, after) {
  const compare = $(".compare", card), slider = $(".slider", card), level = $(".zoom-level", card);
  const split = () => compare.style.setProperty("--split", slider.value + "%");
  slider.addEventListener("input", split);
  split();
  let centre = { x: before.naturalWidth / 2, y: before.naturalHeight / 2 };
  const zoom = () => {
    for (const [canvas, img] of [[$(".zoom-before", card), before], [$(".zoom-after", card), after]]) {
      const context = canvas.getContext("2d");
      const side = canvas.width / Number(level.value);  // source pixels shown
      context.imageSmoothingEnabled = false;
      context.fillStyle = "#eee";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.drawImage(img, centre.x - side / 2, centre.y - side / 2, side, side, 0, 0, canvas.width, canvas.height);
    }
  };
  compare.addEventListener("pointermove", (event) => {
    const box = before.getBoundingClientRect();
    centre = { x: (event.clientX - box.left) / box.width * before.naturalWidth,
               y: (event.clientY - box.top) / box.height * before.naturalHeight };
    zoom();
  });
  level.addEventListener("change", zoom);
  zoom();
}

start();
