export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function button(label, className, onClick) {
  const b = el('button', { type: 'button', className, textContent: label });
  b.addEventListener('click', onClick);
  return b;
}

/**
 * One upload in the Files view: name, status, size and progress, the SHA-256 the server verified,
 * and what can be done with it (download, copy its link, resume, delete).
 */
export function renderFile(u, actions) {
  const item = el('li', { className: `file status-${u.status}` });
  Object.assign(item.dataset, { id: u.id, status: u.status, sha256: u.sha256 ?? '', name: u.file_name });
  const when = new Date(u.created_at).toLocaleString();
  const size = u.size === undefined ? 'length not known yet' : formatBytes(u.size);
  const head = el(
    'div',
    { className: 'file-head' },
    el('span', { className: 'file-name', textContent: u.file_name, title: u.file_name }),
    el('span', { className: `badge badge-${u.status}`, textContent: u.status }),
  );
  const meta = el('div', { className: 'file-meta', textContent: `${size} - ${u.protocol} - ${when}` });
  item.append(head, meta);
  if (u.status === 'uploading' && u.size) {
    const done = u.bytes_received ?? 0;
    item.append(el('progress', { max: u.size, value: done, title: `${formatBytes(done)} of ${size}` }));
  }
  if (u.sha256) item.append(el('div', { className: 'sha', textContent: `SHA-256 ${u.sha256}`, title: u.sha256 }));
  if (u.failure) item.append(el('div', { className: 'failure', textContent: u.failure }));
  const bar = el('div', { className: 'file-actions' });
  if (u.status === 'completed' && u.download_url) {
    bar.append(el('a', { className: 'button download', href: u.download_url, download: u.file_name, textContent: 'Download' }));
    bar.append(button('Copy link', 'copy', () => actions.copy(u)));
  }
  if (u.status === 'uploading' && u.protocol === 'tus') bar.append(button('Resume', 'resume', () => actions.resume(u)));
  if (u.status !== 'aborted' && u.status !== 'expired') bar.append(button('Delete', 'delete', () => actions.remove(u)));
  item.append(bar);
  return item;
}
