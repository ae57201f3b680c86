// The sluice uploader page: Uppy's Dashboard (drag and drop, previews, per-file progress,
// pause/resume/retry, many files) on this server's tus endpoint - or, when the server stores
// files in S3, @uppy/aws-s3 sending each part straight to the bucket through the direct-upload
// routes. A Files view lists the caller's uploads with what the server verified. Bundled by
// scripts/build-web.mjs (esbuild); nothing is loaded from a CDN.
import AwsS3 from '@uppy/aws-s3';
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus from '@uppy/tus';
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import './app.css';
import { partSize, sha256Hex } from './direct.js';
import { formatBytes, renderFile } from './files.js';

const params = new URLSearchParams(location.search);
const MiB = 1024 * 1024;
const TUS_CHUNK = Number(params.get('chunk')) || 8 * MiB;
const $ = (selector) => document.querySelector(selector);

let token = localStorage.getItem('sluice.token') ?? '';
const authHeaders = () => (token ? { authorization: `Bearer ${token}` } : {});

/** A JSON request to this server; a problem answer becomes an Error with its detail. */
async function api(method, path, json) {
  const res = await fetch(path, {
    method,
    headers: { ...authHeaders(), ...(json !== undefined && { 'content-type': 'application/json' }) },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (res.status === 204) return null;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.detail ?? body.title ?? `HTTP ${res.status}`);
    err.status = res.status;
    err.code = body.code;
    throw err;
  }
  return body;
}

const info = await api('GET', '/v1/server');

// --- authentication: a token field only when the server needs one ---
if (info.auth_required) {
  $('#auth').hidden = false;
  $('#token').value = token;
  const check = async () => {
    if (!token) {
      $('#auth-state').textContent = 'This server needs an access token.';
      return;
    }
    try {
      await api('GET', '/v1/uploads?limit=1');
      $('#auth-state').textContent = 'Token accepted.';
    } catch (err) {
      $('#auth-state').textContent = `Token refused: ${err.message}`;
    }
  };
  const save = () => {
    token = $('#token').value.trim();
    localStorage.setItem('sluice.token', token);
    void check();
  };
  $('#auth').addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });
  $('#token').addEventListener('change', save);
  void check();
}

// --- the uploader ---
// Direct uploads hash each part in the browser (WebCrypto, secure contexts only) so that S3 itself
// refuses damaged bytes and the server can verify the file part by part without its whole digest.
const direct = info.direct_uploads === 'store' && globalThis.crypto?.subtle !== undefined && params.get('via') !== 'tus';
const uppy = new Uppy({
  id: 'sluice',
  autoProceed: false,
  restrictions: { maxFileSize: info.max_upload_size, ...(info.allowed_types && { allowedFileTypes: info.allowed_types }) },
});
uppy.use(Dashboard, {
  inline: true,
  target: '#uppy',
  width: '100%',
  height: 420,
  showProgressDetails: true,
  proudlyDisplayPoweredByUppy: false,
  showRemoveButtonAfterComplete: true,
  note: `Up to ${formatBytes(info.max_upload_size)} per file${info.allowed_types ? ` (${info.allowed_types.join(', ')})` : ''}. Every byte is verified by the server.`,
});
const uploadIds = new Map();

if (direct) {
  uppy.use(AwsS3, {
    shouldUseMultipart: true,
    limit: 4,
    getChunkSize: (file) => partSize(file.size, info.part_size),
    async createMultipartUpload(file) {
      const up = await api('POST', '/v1/uploads', {
        file_name: file.name,
        size: file.size,
        content_type: file.type || 'application/octet-stream',
        chunk_size: partSize(file.size, info.part_size),
        transfer: 'direct',
      });
      uploadIds.set(file.id, up.id);
      return { uploadId: up.id, key: up.id };
    },
    async signPart(_file, { uploadId, partNumber, body }) {
      const target = await api('POST', `/v1/uploads/${uploadId}/parts/${partNumber}/url`, { sha256: await sha256Hex(body) });
      return { method: 'PUT', url: target.url, headers: target.headers };
    },
    async listParts(_file, { uploadId }) {
      const parts = [];
      for (let from = 1; from !== undefined; ) {
        const page = await api('GET', `/v1/uploads/${uploadId}/parts?from=${from}&limit=1000`);
        for (const p of page.parts) if (p.etag) parts.push({ PartNumber: p.part_number, Size: p.size, ETag: p.etag });
        from = page.next_part;
      }
      return parts;
    },
    async completeMultipartUpload(_file, { uploadId, parts }) {
      await api('POST', `/v1/uploads/${uploadId}/finish`, { parts: parts.map((p) => ({ part_number: p.PartNumber, etag: p.ETag })) });
      const done = await api('GET', `/v1/uploads/${uploadId}`);
      return { location: done.download_url ?? '' };
    },
    async abortMultipartUpload(_file, { uploadId }) {
      await api('DELETE', `/v1/uploads/${uploadId}`).catch(() => {});
    },
  });
  $('#mode').textContent = 'Files go straight to the bucket, part by part; the server checks every part.';
} else {
  uppy.use(Tus, {
    endpoint: info.tus_endpoint,
    chunkSize: TUS_CHUNK,
    retryDelays: [0, 1000, 3000, 5000],
    removeFingerprintOnSuccess: true,
    headers: () => authHeaders(),
  });
  $('#mode').textContent = 'Interrupted? Add the same file again, even after a reload: it resumes where the server is.';
}

const uploadIdOf = (file, response) => uploadIds.get(file.id) ?? response?.uploadURL?.split('/').pop();

uppy.on('upload-success', async (file, response) => {
  const id = uploadIdOf(file, response);
  if (!id) return;
  try {
    // The server publishes the file as its last bytes arrive; a large one may still be finishing.
    let up = await api('GET', `/v1/uploads/${id}`);
    for (let wait = 100; up.status === 'finishing' || (up.status === 'uploading' && up.bytes_received === up.size); wait = Math.min(wait * 2, 2000)) {
      await new Promise((r) => setTimeout(r, wait));
      up = await api('GET', `/v1/uploads/${id}`);
    }
    if (up.status !== 'completed') throw new Error(`it is ${up.status}${up.failure ? `: ${up.failure}` : ''}`);
    uppy.setFileMeta(file.id, { sluiceId: id });
    const done = document.createElement('li');
    done.className = 'verified';
    Object.assign(done.dataset, { id, sha256: up.sha256 ?? '', name: up.file_name });
    done.textContent = `${up.file_name}: verified, SHA-256 ${up.sha256}`;
    $('#verified').append(done);
  } catch (err) {
    uppy.info(`Could not read the upload's status: ${err.message}`, 'error', 5000);
  }
});

// --- views ---
const views = { upload: $('#view-upload'), files: $('#view-files') };
function show(view) {
  for (const [name, el] of Object.entries(views)) el.hidden = name !== view;
  for (const tab of document.querySelectorAll('.tab[data-view]')) tab.toggleAttribute('aria-current', tab.dataset.view === view);
  if (view === 'files') void loadFiles();
  history.replaceState(null, '', view === 'files' ? '#files' : location.pathname + location.search);
}
for (const tab of document.querySelectorAll('.tab[data-view]')) tab.addEventListener('click', () => show(tab.dataset.view));
uppy.on('complete', () => {
  if (!views.files.hidden) void loadFiles();
});

// --- the Files view ---
let cursor = null;
async function loadFiles(more = false) {
  if (!more) cursor = null;
  try {
    const page = await api('GET', `/v1/uploads?limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const list = $('#files');
    if (!more) list.replaceChildren();
    // Deleted (aborted) uploads are gone as far as their owner is concerned.
    for (const u of page.uploads) if (u.status !== 'aborted') list.append(renderFile(u, actions));
    cursor = page.next_cursor;
    $('#more').hidden = !cursor;
    $('#files-state').textContent = list.children.length === 0 ? 'Nothing uploaded yet.' : '';
  } catch (err) {
    $('#files-state').textContent = `Could not list your uploads: ${err.message}`;
  }
}
$('#refresh').addEventListener('click', () => loadFiles());
$('#more').addEventListener('click', () => loadFiles(true));

let resuming = null;
const actions = {
  async remove(u) {
    if (!confirm(`Delete ${u.file_name}?`)) return;
    try {
      await api('DELETE', u.status === 'completed' ? `/v1/files/${u.id}` : `/v1/uploads/${u.id}`);
      uppy.info(`${u.file_name} deleted`, 'success', 3000);
    } catch (err) {
      uppy.info(`Delete failed: ${err.message}`, 'error', 5000);
    }
    await loadFiles();
  },
  async copy(u) {
    try {
      await navigator.clipboard.writeText(u.download_url);
      uppy.info('Download link copied', 'success', 3000);
    } catch {
      prompt('Download link (valid for a while):', u.download_url);
    }
  },
  resume(u) {
    resuming = u;
    $('#resume-input').click();
  },
};
$('#resume-input').addEventListener('change', (event) => {
  const file = event.target.files?.[0];
  event.target.value = '';
  if (!file || !resuming) return;
  if (file.size !== resuming.size) {
    uppy.info(`${file.name} is ${formatBytes(file.size)}; the upload is ${formatBytes(resuming.size)}`, 'error', 5000);
    return;
  }
  show('upload');
  uppy.addFile({ name: file.name, type: file.type, data: file, source: 'resume' });
  void uppy.upload();
});

show(location.hash === '#files' ? 'files' : 'upload');
document.body.dataset.ready = 'true';
