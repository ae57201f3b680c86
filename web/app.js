// The sluice uploader page: tus-js-client against this server's tus endpoint. Each file is sent
// in chunks; an interrupted upload (network error, pause, page reload) resumes where the server
// is: tus-js-client keeps each upload's URL in localStorage, keyed by the file's fingerprint, so
// choosing the same file again after a reload continues it. The server verifies every byte and
// records the whole-file SHA-256, shown when the upload completes.
/* global tus */

const params = new URLSearchParams(location.search);
const CHUNK_SIZE = Number(params.get('chunk')) || 8 * 1024 * 1024;
const tokenInput = document.querySelector('#token');
const list = document.querySelector('#uploads');
const drop = document.querySelector('#drop');
const pending = document.querySelector('#pending');

tokenInput.value = localStorage.getItem('sluice.token') ?? '';
tokenInput.addEventListener('change', () => localStorage.setItem('sluice.token', tokenInput.value.trim()));
const authHeaders = () => (tokenInput.value.trim() ? { Authorization: `Bearer ${tokenInput.value.trim()}` } : {});

const unfinished = Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length;
if (unfinished > 0) {
  pending.hidden = false;
  pending.textContent = `${unfinished} unfinished upload(s) on this server: choose the same file(s) again to resume.`;
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

function addUpload(file) {
  const row = document.createElement('div');
  row.className = 'row';
  row.dataset.file = file.name;
  row.innerHTML =
    '<div class="line"><span class="name"></span><span class="buttons"></span></div><progress max="100" value="0"></progress><div class="line"><span class="info">waiting</span></div><div class="sha"></div>';
  row.querySelector('.name').textContent = file.name;
  const bar = row.querySelector('progress');
  const info = row.querySelector('.info');
  const buttons = row.querySelector('.buttons');
  const sha = row.querySelector('.sha');
  list.append(row);

  let started = performance.now();
  let baseline = -1; // bytes already sent when (re)started, for the rate
  const setState = (state, text) => {
    row.dataset.state = state;
    row.classList.toggle('failed', state === 'failed');
    row.classList.toggle('done', state === 'done');
    info.textContent = text;
  };

  const upload = new tus.Upload(file, {
    endpoint: '/files/',
    chunkSize: CHUNK_SIZE,
    retryDelays: [0, 1000, 3000, 5000, 10000],
    metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
    headers: authHeaders(),
    removeFingerprintOnSuccess: true,
    onProgress(sent, total) {
      const pct = total ? Math.floor((sent / total) * 100) : 0;
      bar.value = pct;
      const seconds = Math.max((performance.now() - started) / 1000, 0.001);
      if (baseline < 0) baseline = sent;
      const rate = Math.max(sent - baseline, 0) / seconds;
      row.dataset.progress = String(pct);
      setState('uploading', `${pct}% - ${formatBytes(sent)} of ${formatBytes(total)} - ${formatBytes(rate)}/s`);
    },
    async onSuccess() {
      bar.value = 100;
      buttons.replaceChildren();
      const id = upload.url.split('/').pop();
      row.dataset.id = id;
      const res = await fetch(`/v1/uploads/${id}`, { headers: authHeaders() });
      const status = await res.json();
      row.dataset.sha256 = status.sha256 ?? '';
      sha.textContent = `SHA-256 ${status.sha256} (verified by the server)`;
      setState('done', `done - ${formatBytes(file.size)} stored`);
    },
    onError(err) {
      setState('failed', `failed: ${err.message.split('\n')[0]}`);
      buttons.replaceChildren(button('Retry', start), cancelButton);
    },
  });

  const pauseButton = button('Pause', () => {
    void upload.abort();
    setState('paused', `paused at ${bar.value}%`);
    buttons.replaceChildren(button('Resume', start), cancelButton);
  });
  const cancelButton = button('Cancel', async () => {
    await upload.abort(true); // terminates the upload on the server
    buttons.replaceChildren();
    setState('cancelled', 'cancelled');
  });

  function start() {
    started = performance.now();
    baseline = -1;
    buttons.replaceChildren(pauseButton, cancelButton);
    upload.options.headers = authHeaders();
    upload.start();
  }

  upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0]);
      row.dataset.resumed = 'true';
      setState('resuming', 'resuming where the server is');
    }
    start();
  });
}

function addFiles(files) {
  for (const file of files) addUpload(file);
}

document.querySelector('#files').addEventListener('change', (e) => addFiles(e.target.files));
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  addFiles(e.dataTransfer.files);
});
