// StarGAN v2 and StarGAN v1 in the browser: the model's TFLite file runs in this page with LiteRT.js.
//
// The TFLite signatures are those `python -m stargan_keras.tflite` writes (the signature tables in
// serving/README.md, static shapes). StarGAN v2: latent_guided(image uint8 [1,S,S,3], target_domain int32 [1],
// z float32 [1,latent_dim], psi float32 []) and reference_guided(image, reference uint8 [1,S,S,3],
// reference_domain int32 [1]). StarGAN v1: translate(image uint8 [1,S,S,3], target_labels float32 [1,C]).
// Each answers `image` uint8 [1,S,S,3]. model.json (written by `python -m stargan_keras.demo`) declares the
// file's signatures, which choose the controls (UIS), and gives the names (domains or labels) and sizes.
//
// LiteRT.js calls (its README and https://ai.google.dev/edge/litert/web): loadLiteRt(wasm directory),
// loadAndCompile(model bytes, {accelerator}), new Tensor(typedArray, shape), model.run(signature,
// {name: tensor}) -> {name: tensor}, tensor.data(), tensor.delete().
import {Tensor, getWebGpuDevice, loadAndCompile, loadLiteRt} from '@litertjs/core';

const MAX_PIXELS = 50e6;  // larger images would take hundreds of MB to decode; a phone photo is 12-50 MP
const WASM_DIR = new URL('./litert/core/wasm/', location.href).href;
// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)): valid only where Wasm SIMD is.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8,
                                   0, 65, 0, 253, 15, 253, 98, 11]);

const $ = (id) => document.getElementById(id);
const state = {meta: null, ui: null, model: null, source: null, reference: null, busy: false, again: false,
               runs: 0};
const KIND_NAMES = {latent: 'latent-guided', reference: 'reference-guided', labels: 'label-guided'};

class VisitorError extends Error {}

// -- errors and status ------------------------------------------------------------------------------------------
function showError(kind, message) {
  clearError(kind);
  const item = document.createElement('li');
  item.dataset.kind = kind;
  item.textContent = message;
  $('errors').append(item);
  $('errors').hidden = false;
}

function clearError(kind) {
  for (const item of $('errors').querySelectorAll(`[data-kind="${kind}"]`)) item.remove();
  $('errors').hidden = !$('errors').children.length;
}

function setState(value) {
  document.body.dataset.state = value;
}

// -- z from a seed: mulberry32 uniforms, Box-Muller normals (browser.server.latent_from_seed in Python) -----------
export function latentFromSeed(seed, dim) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const z = new Float32Array(dim);
  for (let i = 0; i < dim; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    z[i] = radius * Math.cos(angle);
    if (i + 1 < dim) z[i + 1] = radius * Math.sin(angle);
  }
  return z;
}

// -- images: a file -> uint8 RGB [S, S, 3], the whole picture resized to S x S as the project's serving does ----
async function readImage(file, canvas) {
  const size = state.meta.img_size;
  const url = URL.createObjectURL(file);
  try {
    const image = new Image();
    const loaded = new Promise((resolve, reject) => {
      image.onload = resolve;
      image.onerror = reject;
    });
    image.src = url;
    try {
      await loaded;
    } catch {
      throw new VisitorError(`${file.name} is not an image this browser can open: choose a PNG, JPEG, GIF, ` +
                             'WebP or BMP file.');
    }
    const pixels = image.naturalWidth * image.naturalHeight;
    if (pixels > MAX_PIXELS) {
      throw new VisitorError(`${file.name} is ${image.naturalWidth} x ${image.naturalHeight} pixels ` +
                             `(${(pixels / 1e6).toFixed(0)} MP), over this page's limit of ${MAX_PIXELS / 1e6} MP: ` +
                             'scale it down first.');
    }
    canvas.width = canvas.height = size;
    const context = canvas.getContext('2d', {willReadFrequently: true});
    context.fillStyle = '#fff';  // transparent pixels become white
    context.fillRect(0, 0, size, size);
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = 'high';
    context.drawImage(image, 0, 0, size, size);
    const rgba = context.getImageData(0, 0, size, size).data;
    const rgb = new Uint8Array(size * size * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[j] = rgba[i];
      rgb[j + 1] = rgba[i + 1];
      rgb[j + 2] = rgba[i + 2];
    }
    canvas.hidden = false;
    return rgb;
  } finally {
    URL.revokeObjectURL(url);
  }
}

function drawRgb(canvas, rgb, size) {
  canvas.width = canvas.height = size;
  const pixels = new ImageData(size, size);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    pixels.data[i] = rgb[j];
    pixels.data[i + 1] = rgb[j + 1];
    pixels.data[i + 2] = rgb[j + 2];
    pixels.data[i + 3] = 255;
  }
  canvas.getContext('2d').putImageData(pixels, 0, 0);
}

function watchFile(kind, onImage) {
  const input = $(`${kind}-file`);
  const drop = $(`${kind}-drop`);
  const take = async (file) => {
    if (!file || !state.meta) return;
    try {
      const rgb = await readImage(file, $(kind));
      clearError(kind);
      state[kind] = rgb;
      onImage();
    } catch (error) {
      showError(kind, error instanceof VisitorError ? error.message : `${file.name}: ${error.message}`);
    }
  };
  input.addEventListener('change', () => take(input.files[0]));
  drop.addEventListener('dragover', (event) => event.preventDefault());
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    take(event.dataTransfer.files[0]);
  });
}

// -- the model ----------------------------------------------------------------------------------------------------
function wasmSimdSupported() {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

async function download(url, name, bytes) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the server answered ${response.status} ${response.statusText}`);
  const data = new Uint8Array(bytes);
  const reader = response.body.getReader();
  let offset = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    if (offset + value.length > data.length) throw new Error(`more than the ${bytes} bytes expected`);
    data.set(value, offset);
    offset += value.length;
    $('status').textContent = `Downloading ${name}: ${(offset / 1e6).toFixed(1)} of ${(bytes / 1e6).toFixed(1)} MB`;
  }
  if (offset !== bytes) throw new Error(`got ${offset} of its ${bytes} bytes`);
  return data;
}

// Threads need cross-origin isolation (the demo server sends the headers) and LiteRT.js's threaded build; `?threads=N`
// asks for N (the benchmark's choice), else one per core.
function threadCount(asked) {
  const possible = self.crossOriginIsolated ? navigator.hardwareConcurrency || 1 : 1;
  const wanted = Number.parseInt(asked ?? '', 10);
  return Math.max(1, Math.min(Number.isFinite(wanted) ? wanted : possible, possible));
}

async function loadModel() {
  const start = performance.now();
  const meta = await (await fetch('model.json')).json();
  state.meta = meta;
  showControls(meta);
  if (!wasmSimdSupported()) {
    throw new VisitorError('This browser has no WebAssembly SIMD, which LiteRT.js needs to run the model on the ' +
                           'CPU: use a current Chrome, Edge, Firefox or Safari (16.4 or later).');
  }
  const query = new URLSearchParams(location.search);
  const wanted = query.get('accelerator');
  let numThreads = threadCount(query.get('threads'));
  await loadLiteRt(WASM_DIR, {threads: numThreads > 1}).catch(() => {
    numThreads = 1;  // the threaded build did not start: the single-threaded one runs alone
    return loadLiteRt(WASM_DIR);
  });
  let bytes;
  try {
    bytes = await download('model.tflite', meta.model_file, meta.model_bytes);
  } catch (error) {
    throw new VisitorError(`Could not download the model file ${meta.model_file}: ${error.message}.`);
  }
  $('status').textContent = `Compiling ${meta.model_file}…`;
  const accelerator = wanted || (getWebGpuDevice() ? 'webgpu' : 'wasm');
  try {
    state.model = await loadAndCompile(bytes, {accelerator, cpuOptions: {numThreads}});
    state.backend = accelerator === 'webgpu' ? 'WebGPU' : 'WASM';
  } catch (error) {
    if (accelerator === 'wasm' || wanted) {
      throw new VisitorError(`The model file ${meta.model_file} failed to load: ${error.message || error}.`);
    }
    state.model = await loadAndCompile(bytes, {accelerator: 'wasm', cpuOptions: {numThreads}});  // the CPU will do
    state.backend = 'WASM';
  }
  if (state.model.signatures[state.ui.signature] === undefined) {
    throw new VisitorError(`The model file ${meta.model_file} has no ${state.ui.signature} signature: convert it ` +
                           'with `python -m stargan_keras.tflite`.');
  }
  const loadMs = performance.now() - start;
  document.body.dataset.loadMs = loadMs.toFixed(0);
  document.body.dataset.backend = state.backend;
  document.body.dataset.threads = String(state.model.options.cpuOptions.numThreads);
  const threadNote = state.backend === 'WASM' ? `, ${state.model.options.cpuOptions.numThreads} thread(s)` : '';
  $('status').textContent = `${meta.model_file} (${(meta.model_bytes / 1e6).toFixed(1)} MB, ${meta.img_size} px) ` +
      `on ${state.backend}${threadNote}, loaded in ${(loadMs / 1000).toFixed(1)} s`;
}

async function translate(signature, inputs) {
  const tensors = {};
  for (const [name, [data, shape]] of Object.entries(inputs)) tensors[name] = new Tensor(data, shape);
  let outputs;
  try {
    outputs = await state.model.run(signature, tensors);
    return (await outputs.image.data()).slice();
  } finally {
    for (const tensor of Object.values(tensors)) tensor.delete();
    for (const tensor of Object.values(outputs || {})) tensor.delete();
  }
}

// -- the controls of each family: the first whose signature model.json declares ------------------------------------
function showControls(meta) {
  state.ui = UIS.find((ui) => (meta.signatures || []).includes(ui.signature));
  if (!state.ui) {
    throw new VisitorError(`The model file ${meta.model_file} has none of the signatures this page runs ` +
                           `(${UIS.map((ui) => ui.signature).join(', ')}): convert it with ` +
                           '`python -m stargan_keras.tflite`.');
  }
  document.title = $('title').textContent = `${meta.title} in the browser`;
  $(state.ui.panel).hidden = false;
  state.ui.setup(meta);
}

// StarGAN v2: a target domain, then latent codes (seed, psi, a row of styles) or a reference image.
function setupDomains(meta) {
  for (const [index, name] of meta.domain_names.entries()) $('domain').add(new Option(name, index));
  $('domain').value = String(Math.min(1, meta.num_domains - 1));
}

function domainJobs() {
  const domain = Number($('domain').value);
  if ($('mode').querySelector('input:checked').value === 'reference') {
    return state.reference ? [{kind: 'reference', domain}] : [];
  }
  const seed = Number($('seed').value) >>> 0;
  const count = Math.max(1, Math.min(8, Number($('count').value) || 1));
  const psi = Number($('psi').value);
  return Array.from({length: count}, (_, i) => ({kind: 'latent', domain, seed: (seed + i) >>> 0, psi}));
}

async function runDomainJob(job) {
  const {img_size: size, latent_dim: latentDim} = state.meta;
  const image = [state.source, [1, size, size, 3]];
  if (job.kind === 'reference') {
    return translate('reference_guided', {image, reference: [state.reference, [1, size, size, 3]],
                                          reference_domain: [new Int32Array([job.domain]), [1]]});
  }
  job.z = latentFromSeed(job.seed, latentDim);
  return translate('latent_guided', {image, target_domain: [new Int32Array([job.domain]), [1]],
                                     z: [job.z, [1, latentDim]], psi: [new Float32Array([job.psi]), []]});
}

function describeDomainJob(job, item) {
  Object.assign(item.dataset, {domain: job.domain});
  if (job.kind === 'latent') Object.assign(item.dataset, {seed: job.seed, psi: job.psi, z: JSON.stringify([...job.z])});
  const name = state.meta.domain_names[job.domain];
  return job.kind === 'latent' ? `${name}, seed ${job.seed}, psi ${job.psi.toFixed(2)}` : `${name}, from the reference`;
}

// StarGAN v1: the target label vector, as the authors' test mode sets it: one of the exclusive labels (CelebA's
// hair colours; every class of a categorical model) on and the others of that group off; the rest free.
function setupLabels(meta) {
  const exclusive = new Set(meta.exclusive);
  for (const [index, name] of meta.names.entries()) {
    const input = document.createElement('input');
    input.type = exclusive.has(name) ? 'radio' : 'checkbox';
    input.name = exclusive.has(name) ? 'exclusive-label' : `label-${index}`;
    input.value = String(index);
    input.checked = name === meta.exclusive[0];
    const label = document.createElement('label');
    label.append(input, ` ${name}`);
    $('labels').append(label);
  }
  $('labels-note').textContent = meta.exclusive.length ?
      `One of ${meta.exclusive.join(', ')}; the others on or off.` : 'Each attribute on or off.';
}

function labelJobs() {
  const labels = new Float32Array(state.meta.names.length);
  for (const input of $('labels').querySelectorAll('input:checked')) labels[Number(input.value)] = 1;
  return [{kind: 'labels', labels}];
}

async function runLabelJob(job) {
  const size = state.meta.img_size;
  return translate('translate', {image: [state.source, [1, size, size, 3]],
                                 target_labels: [job.labels, [1, job.labels.length]]});
}

function describeLabelJob(job, item) {
  item.dataset.labels = JSON.stringify([...job.labels]);
  const on = state.meta.names.filter((_, i) => job.labels[i] === 1);
  return on.length ? on.join(', ') : 'no attribute on';
}

const UIS = [
  {signature: 'latent_guided', panel: 'controls', setup: setupDomains, jobs: domainJobs, run: runDomainJob,
   describe: describeDomainJob},
  {signature: 'translate', panel: 'labels-panel', setup: setupLabels, jobs: labelJobs, run: runLabelJob,
   describe: describeLabelJob},
];

// -- rendering ----------------------------------------------------------------------------------------------------
function figure(job, rgb, ms) {
  const item = document.createElement('figure');
  const canvas = document.createElement('canvas');
  canvas.className = 'picture';
  drawRgb(canvas, rgb, state.meta.img_size);
  const caption = document.createElement('figcaption');
  Object.assign(item.dataset, {kind: job.kind, ms: ms.toFixed(1)});
  caption.textContent = state.ui.describe(job, item);
  item.append(canvas, caption);
  return item;
}

async function render() {
  if (!state.model || !state.source) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  setState('busy');
  try {
    do {
      state.again = false;
      const todo = state.ui.jobs();
      $('hint').textContent = todo.length ? '' : 'Choose a reference image of the target domain.';
      const figures = [];
      const times = [];
      for (const job of todo) {
        const start = performance.now();
        const rgb = await state.ui.run(job);
        times.push(performance.now() - start);
        figures.push(figure(job, rgb, times.at(-1)));
      }
      $('outputs').replaceChildren(...figures);
      if (times.length) {
        const mean = times.reduce((a, b) => a + b, 0) / times.length;
        document.body.dataset.latencyMs = mean.toFixed(1);
        $('timing').textContent = `${mean.toFixed(0)} ms per translation on ${state.backend} ` +
            `(${times.length} ${KIND_NAMES[todo[0].kind]})`;
      }
      clearError('translation');
    } while (state.again);
  } catch (error) {
    showError('translation', `The translation failed: ${error.message || error}.`);
  } finally {
    state.busy = false;
    state.runs += 1;
    document.body.dataset.runs = String(state.runs);
    setState('ready');
  }
}

// -- wiring -------------------------------------------------------------------------------------------------------
function wire() {
  watchFile('source', render);
  watchFile('reference', render);
  $('domain').addEventListener('change', render);
  $('labels').addEventListener('change', render);
  for (const id of ['seed', 'count']) $(id).addEventListener('input', render);
  $('psi').addEventListener('input', () => {
    $('psi-value').textContent = Number($('psi').value).toFixed(2);
    render();
  });
  $('new-style').addEventListener('click', () => {
    $('seed').value = String(crypto.getRandomValues(new Uint32Array(1))[0]);
    render();
  });
  $('mode').addEventListener('change', () => {
    const reference = $('mode').querySelector('input:checked').value === 'reference';
    $('latent-controls').hidden = reference;
    $('reference-controls').hidden = !reference;
    render();
  });
}

wire();
loadModel().then(() => {
  setState('ready');
  $('hint').textContent = state.source ? '' : 'Choose a source image to translate.';
  render();
}, (error) => {
  $('status').textContent = 'The model is not loaded.';
  showError('model', error instanceof VisitorError ? error.message : `Loading failed: ${error.message || error}`);
  setState('error');
});
